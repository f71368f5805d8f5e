/**
 * What a deployment is: one Azure OpenAI model deployment Sluice may send work to, as listed in SLUICE_ENDPOINTS.
 * src/config.ts parses the setting with this schema.
 */
import { z } from 'zod';

const endpointSchema = z
  .object({
    /** Region label shown in job records and telemetry, e.g. "swedencentral". */
    region: z.string().min(1),
    /** Azure OpenAI resource endpoint, e.g. https://my-aoai.openai.azure.com */
    endpoint: z.string().url(),
    /** Deployment name inside that resource. */
    deployment: z.string().min(1),
    /** Logical model clients ask for, e.g. "gpt-4o-mini". */
    model: z.string().min(1),
    /**
     * The deployment's model version as Azure lists it (e.g. "1" for text-embedding-3-small, "2024-07-18" for
     * gpt-4o-mini). Embeddings answers do not name it, and vectors of two versions must never share an index, so it is
     * reported with every embeddings answer and kept in its usage row. @default none
     */
    modelVersion: z.string().min(1).max(100).optional(),
    /** Lower is preferred. Endpoints with equal priority form a group. @default 1 */
    priority: z.number().int().min(0).default(1),
    /** Share of traffic within a priority group. @default 1 */
    weight: z.number().positive().default(1),
    /** Tokens per minute the deployment is granted (capacity × 1,000 for Standard SKUs). */
    tpm: z.number().int().positive(),
    /** Requests per minute. @default 6 per 1,000 TPM (Azure's ratio) */
    rpm: z.number().int().positive().optional(),
    /** `managed-identity` (default) uses DefaultAzureCredential; `key` needs apiKey. */
    auth: z.enum(['managed-identity', 'key']).default('managed-identity'),
    apiKey: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((e, ctx) => {
    if (e.auth === 'key' && !e.apiKey) {
      ctx.addIssue({ code: 'custom', message: `auth "key" needs apiKey (endpoint ${e.region}/${e.deployment})` });
    }
  });

/** The deployment list: at least one entry. */
export const endpointsSchema = z.array(endpointSchema).min(1);

/** A deployment with its RPM filled in. */
export type EndpointSettings = z.output<typeof endpointSchema> & { rpm: number };

/** Azure grants 6 RPM per 1,000 TPM on Standard deployments; used when an entry names no rpm. */
export function defaultRpm(tpm: number): number {
  return Math.max(1, Math.floor((tpm * 6) / 1000));
}

/**
 * The model version(s) of the deployments serving a logical model, as one string: the version when they agree, the
 * distinct versions sorted and joined with "," while a rollout has them differ, "" when none names one. Known before
 * routing, so it can be part of a cache key: the key changes as soon as any deployment of the model changes version.
 */
export function modelVersionOf(endpoints: ReadonlyArray<Pick<EndpointSettings, 'model' | 'modelVersion'>>, model: string): string {
  const versions = new Set(endpoints.filter((e) => e.model === model && e.modelVersion).map((e) => e.modelVersion!));
  return [...versions].sort().join(',');
}
