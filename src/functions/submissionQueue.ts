/**
 * Queue trigger on the submission queue: a message like the body of POST /api/v1/jobs (+ api_key, client_id,
 * reply_to) becomes a queued job of the key's team; an unusable one goes to the dead-letter queue with its reason
 * (and without the key). Storage failures throw, so
 * the host retries and, after maxDequeueCount, moves the message to `<queue>-poison`.
 *
 * Timer `submissionPoisonDrain`: the poison queue holds messages the host could not decode (plain JSON while
 * host.json says base64) or that failed every retry. It reads them raw, accepts either encoding, and either makes
 * the job or dead-letters the message with the reason, so nothing is silently dropped or retried forever.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { acceptSubmission, decodeSubmission, redactSubmission, type DeadLetterReason, type SubmissionOutcome, type SubmissionPort } from '../core/batch/submission';
import { bindingSettings } from '../config';
import { getBatchServices, getServices } from '../runtime/services';
import { teamRefusalNow } from '../runtime/teamLimits';

/** Poison-queue deliveries tried before a message is dead-lettered as unprocessable. */
const POISON_ATTEMPTS = 3;

function port(): SubmissionPort {
  const { jobs, dispatch, auth } = getServices();
  return {
    authenticate: async (apiKey) => {
      const result = await auth.authenticate((name) => (name === 'api-key' ? apiKey : undefined), Date.now());
      return result.ok ? { ok: true, team: result.principal.team } : result;
    },
    teamLimit: teamRefusalNow,
    create: async (job) => {
      const created = await jobs.create(job);
      if (created) getServices().submit.backlog.add(job.team, job.createdAt, 1); // counted in as a submit is
      return created;
    },
    get: async (id) => {
      const stored = await jobs.get(id, { withRequest: false });
      return stored && { bodyHash: stored.job.bodyHash, status: stored.job.status };
    },
    enqueue: (job, lane) => dispatch.intake.send(job, { lane }),
  };
}

/** Sluice's own queues: no reply_to may name them (nor a lane or poison queue derived from them). */
function ownQueues(): string[] {
  const { config } = getServices();
  const { batchQueue, submitQueue, submitDeadLetterQueue } = config.batch;
  return [config.jobsQueue, batchQueue, submitQueue, submitDeadLetterQueue];
}

async function deadLetter(reason: DeadLetterReason, original: unknown, dequeueCount: number): Promise<void> {
  const { submitDeadLetter, settings, send } = getBatchServices();
  const message = redactSubmission(original);
  await send(submitDeadLetter, { reason, message, source_queue: settings.submitQueue, dequeue_count: dequeueCount, dead_lettered_at: new Date().toISOString() });
}

/** Decode → accept → dead-letter when unusable. Returns the outcome; throws on storage failures. */
async function handle(message: unknown, dequeueCount: number): Promise<SubmissionOutcome> {
  const decoded = decodeSubmission(message);
  const outcome = decoded.ok
    ? await acceptSubmission(decoded.value, port(), { models: getServices().config.models, now: Date.now(), ownQueues: ownQueues() })
    : ({ kind: 'dead-letter', reason: decoded.reason } as const);
  if (outcome.kind === 'dead-letter') await deadLetter(outcome.reason, decoded.ok ? decoded.value : message, dequeueCount);
  return outcome;
}

function describe(outcome: SubmissionOutcome): string {
  return outcome.kind === 'dead-letter' ? `dead-lettered: ${outcome.reason.code}: ${outcome.reason.message}` : `[job=${outcome.jobId}] ${outcome.kind}`;
}

export async function submissionQueue(message: unknown, context: InvocationContext): Promise<void> {
  const dequeueCount = Number(context.triggerMetadata?.dequeueCount ?? 1);
  const outcome = await handle(message, dequeueCount);
  if (outcome.kind === 'dead-letter') context.warn(`submission ${describe(outcome)}`);
  else context.debug(`submission ${describe(outcome)}`);
}

export async function submissionPoisonDrain(_timer: Timer, context: InvocationContext): Promise<void> {
  const poison = getBatchServices().submitPoison;
  await poison.createIfNotExists();
  for (let round = 0; round < 10; round += 1) {
    const { receivedMessageItems: items } = await poison.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 30 });
    if (items.length === 0) return;
    for (const item of items) {
      try {
        const outcome = await handle(item.messageText, item.dequeueCount);
        context.debug(`poisoned submission ${item.messageId}: ${describe(outcome)}`);
      } catch (err) {
        if (item.dequeueCount < POISON_ATTEMPTS) {
          context.warn(`poisoned submission ${item.messageId} failed again (${(err as Error).message}); will retry`);
          continue; // reappears after its visibility timeout
        }
        await deadLetter({ code: 'unprocessable', message: `failed ${item.dequeueCount} more times after poisoning: ${(err as Error).message}`, param: null }, item.messageText, item.dequeueCount);
      }
      await poison.deleteMessage(item.messageId, item.popReceipt);
    }
  }
}

const bindings = bindingSettings();
app.storageQueue('submissionQueue', { queueName: bindings.submitQueue, connection: 'AzureWebJobsStorage', handler: submissionQueue });
app.timer('submissionPoisonDrain', { schedule: bindings.batchSweepSchedule, handler: submissionPoisonDrain });
