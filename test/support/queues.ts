/** Waiting for a stack's queues to drain: the event to wait for before asserting that something did NOT happen. */
import { QueueServiceClient } from '@azure/storage-queue';
import { eventually } from './api';

/** Queues whose messages stay put by design: poison and dead-letter queues, which nothing drains on its own. */
const PARKED = /-(poison|deadletter)$/;

/**
 * Resolves once every queue of the storage account that `include` picks holds no message, visible or not: every
 * delivery, delayed retry and claim-recovery message has been handled, so no worker can still start a model call for
 * the work submitted so far. Poison and dead-letter queues are left out. The deadline only fails the test if the
 * queues never drain. Not for runs that kill workers: a message a dead worker held comes back only after the host's
 * 10-minute processing visibility.
 */
export async function queuesDrained(connectionString: string, include: (name: string) => boolean = () => true, timeoutMs = 120_000): Promise<void> {
  const service = QueueServiceClient.fromConnectionString(connectionString);
  await eventually(
    'every queue to drain',
    async () => {
      const waiting: string[] = [];
      for await (const q of service.listQueues()) {
        if (PARKED.test(q.name) || !include(q.name)) continue;
        const { approximateMessagesCount } = await service.getQueueClient(q.name).getProperties();
        if ((approximateMessagesCount ?? 0) > 0) waiting.push(`${q.name}: ${approximateMessagesCount}`);
      }
      if (waiting.length > 0) throw new Error(`messages left on ${waiting.join(', ')}`);
      return true;
    },
    timeoutMs,
    250,
  );
}
