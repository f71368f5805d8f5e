/** Waiting for a stack's queues to drain: the event to wait for before asserting that something did NOT happen. */
import { QueueServiceClient } from '@azure/storage-queue';
import { eventually } from './api';

/** Queues whose messages stay put by design: poison and dead-letter queues, which nothing drains on its own. */
const PARKED = /-(poison|deadletter)$/;

/**
 * Resolves once every queue of the storage account holds no message, visible or not: every delivery, delayed retry,
 * and claim-recovery message has been handled, so no worker can still start a model call for the work submitted so
 * far. Queues matching `except` (e.g. reply queues a test reads itself) and poison and dead-letter queues are left
 * out. The deadline only fails the test if the queues never drain.
 */
export async function queuesDrained(connectionString: string, except: (name: string) => boolean = () => false, timeoutMs = 120_000): Promise<void> {
  const service = QueueServiceClient.fromConnectionString(connectionString);
  await eventually(
    'every queue to drain',
    async () => {
      for await (const q of service.listQueues()) {
        if (PARKED.test(q.name) || except(q.name)) continue;
        const { approximateMessagesCount } = await service.getQueueClient(q.name).getProperties();
        if ((approximateMessagesCount ?? 0) > 0) return false;
      }
      return true;
    },
    timeoutMs,
    250,
  );
}
