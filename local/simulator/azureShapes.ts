// Response and error bodies shaped like Azure OpenAI's, copied from real responses where it
// matters to clients (codes, params, messages that SDKs and Sluice parse).
import { randomUUID } from 'node:crypto';

export interface AzureError {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

export const UNAUTHORIZED_MESSAGE =
  'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.';

export function unauthorized(): AzureError {
  return { status: 401, body: { error: { code: '401', message: UNAUTHORIZED_MESSAGE } } };
}

export function deploymentNotFound(): AzureError {
  return {
    status: 404,
    body: {
      error: {
        code: 'DeploymentNotFound',
        message:
          'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.',
      },
    },
  };
}

export function resourceNotFound(): AzureError {
  return { status: 404, body: { error: { code: '404', message: 'Resource not found' } } };
}

export function missingApiVersion(): AzureError {
  return {
    status: 400,
    body: {
      error: {
        code: 'MissingApiVersionParameter',
        message: 'The api-version query parameter (?api-version=) is required for all requests.',
      },
    },
  };
}

export function invalidRequest(message: string, param: string | null, code: string | null = null): AzureError {
  return { status: 400, body: { error: { message, type: 'invalid_request_error', param, code } } };
}

export function operationNotSupported(operation: string, model: string): AzureError {
  return {
    status: 400,
    body: {
      error: {
        code: 'OperationNotSupported',
        message: `The ${operation} operation does not work with the specified model, ${model}. Please choose different model and try again. You can learn more about which models can be used with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993.`,
      },
    },
  };
}

/** `completionTokens` undefined = the request gave no max_tokens (Azure then words it differently). */
export function contextLengthExceeded(contextWindow: number, promptTokens: number, completionTokens?: number): AzureError {
  const message =
    completionTokens === undefined
      ? `This model's maximum context length is ${contextWindow} tokens. However, your messages resulted in ${promptTokens} tokens. Please reduce the length of the messages.`
      : `This model's maximum context length is ${contextWindow} tokens. However, you requested ${promptTokens + completionTokens} tokens (${promptTokens} in the messages, ${completionTokens} in the completion). Please reduce the length of the messages or completion.`;
  return invalidRequest(message, 'messages', 'context_length_exceeded');
}

export function maxTokensTooLarge(param: string, requested: number, maxOutputTokens: number): AzureError {
  return invalidRequest(
    `max_tokens is too large: ${requested}. This model supports at most ${maxOutputTokens} completion tokens, whereas you provided ${requested}.`,
    param,
    'invalid_value',
  );
}

const safe = { filtered: false, severity: 'safe' } as const;
const notDetected = { filtered: false, detected: false } as const;

export function promptFilterResults(promptCount = 1): Record<string, unknown>[] {
  return Array.from({ length: promptCount }, (_, promptIndex) => ({
    prompt_index: promptIndex,
    content_filter_results: { hate: safe, jailbreak: notDetected, self_harm: safe, sexual: safe, violence: safe },
  }));
}

export function completionFilterResults(): Record<string, unknown> {
  return {
    hate: safe,
    protected_material_code: notDetected,
    protected_material_text: notDetected,
    self_harm: safe,
    sexual: safe,
    violence: safe,
  };
}

export function contentFiltered(): AzureError {
  return {
    status: 400,
    body: {
      error: {
        message:
          "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
        type: null,
        param: 'prompt',
        code: 'content_filter',
        status: 400,
        innererror: {
          code: 'ResponsibleAIPolicyViolation',
          content_filter_result: {
            hate: safe,
            jailbreak: notDetected,
            self_harm: safe,
            sexual: safe,
            violence: { filtered: true, severity: 'medium' },
          },
        },
      },
    },
  };
}

/** Operation names as they appear in Azure's 429 message. */
export type AzureOperation = 'ChatCompletions_Create' | 'Embeddings_Create';

/** 429 with retry-after (whole seconds, rounded up) and retry-after-ms (exact). */
export function rateLimited(
  operation: AzureOperation,
  apiVersion: string,
  limitKind: 'tokens' | 'requests',
  retryAfterMs: number,
): AzureError {
  const retryAfterSeconds = Math.ceil(retryAfterMs / 1000);
  const limitName = limitKind === 'tokens' ? 'token rate limit' : 'call rate limit';
  return {
    status: 429,
    body: {
      error: {
        code: '429',
        message: `Requests to the ${operation} Operation under Azure OpenAI API version ${apiVersion} have exceeded ${limitName} of your current OpenAI S0 pricing tier. Please retry after ${retryAfterSeconds} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.`,
      },
    },
    headers: { 'retry-after': String(retryAfterSeconds), 'retry-after-ms': String(Math.ceil(retryAfterMs)) },
  };
}

export function internalServerError(): AzureError {
  return {
    status: 500,
    body: {
      error: {
        code: 'InternalServerError',
        message: 'The server had an error while processing your request. Sorry about that!',
      },
    },
  };
}

export function serviceUnavailable(): AzureError {
  return {
    status: 503,
    body: {
      error: {
        code: 'ServiceUnavailable',
        message: 'The service is temporarily unable to process your request. Please try again later.',
      },
    },
  };
}

/** "chatcmpl-" + 29 url-safe characters, like OpenAI's ids. */
export function chatCompletionId(): string {
  return `chatcmpl-${randomUUID().replace(/-/g, '').slice(0, 29)}`;
}

export const SYSTEM_FINGERPRINT = 'fp_sim0000001';
