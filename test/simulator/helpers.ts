// Shared helpers for the simulator tests (not a test file itself).
import type { SimulatorConfig } from '../../local/simulator/index';

export const API_VERSION = '2024-10-21';

export interface JsonResponse {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests poke into Azure-shaped JSON
}

/** POSTs `body` (object → JSON, string → as is) and parses the JSON answer. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = { 'api-key': 'test-key' },
): Promise<JsonResponse> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) };
}

export function chatUrl(baseUrl: string, deployment: string, apiVersion: string | null = API_VERSION): string {
  const query = apiVersion === null ? '' : `?api-version=${apiVersion}`;
  return `${baseUrl}/openai/deployments/${deployment}/chat/completions${query}`;
}

/**
 * One region with: "chat" (generous limits), "tiny" (6,000 TPM → 36 RPM → 6 requests per 10 s,
 * 4,096-token context) and "emb" (embeddings). Zero latency so tests run fast.
 */
export function testConfig(overrides: Partial<SimulatorConfig> = {}): SimulatorConfig {
  return {
    regions: [
      {
        name: 'sim-test',
        deployments: [
          { name: 'chat', model: 'gpt-4o-mini-2024-07-18', tpm: 10_000_000, rpm: 100_000, contextWindow: 128_000, maxOutputTokens: 16_384 },
          { name: 'tiny', model: 'gpt-4o-mini-2024-07-18', tpm: 6_000, contextWindow: 4_096 },
          { name: 'emb', model: 'text-embedding-3-small', kind: 'embeddings', tpm: 100_000, contextWindow: 8_191 },
        ],
      },
    ],
    latency: { firstTokenMs: 0, perTokenMs: 0 },
    ...overrides,
  };
}
