/**
 * Prompt token counting as Azure counts it at admission: the o200k tokenizer (gpt-4o family) with the chat
 * message overhead, from the gpt-tokenizer library.
 */
import { countTokens, encodeChat } from 'gpt-tokenizer/model/gpt-4o';

/** Azure's admission estimate for an image part at default detail; text-only prompts never use it. */
const IMAGE_PART_TOKENS = 765;

interface ChatMessageLike {
  role: string;
  content?: unknown;
  name?: string;
}

function textOf(content: unknown): { text: string; images: number } {
  if (typeof content === 'string') return { text: content, images: 0 };
  if (!Array.isArray(content)) return { text: content == null ? '' : JSON.stringify(content), images: 0 };
  let text = '';
  let images = 0;
  for (const part of content as Array<Record<string, unknown>>) {
    if (part?.type === 'text' && typeof part.text === 'string') text += part.text;
    else if (part?.type === 'image_url') images += 1;
    else text += JSON.stringify(part);
  }
  return { text, images };
}

/** Prompt tokens of a chat-completions body: messages with chat overhead, plus tool definitions. */
export function countPromptTokens(body: { messages: ChatMessageLike[]; tools?: unknown; functions?: unknown }): number {
  let images = 0;
  const chat = body.messages.map((m) => {
    const { text, images: n } = textOf(m.content);
    images += n;
    // Assistant tool calls are part of the prompt too.
    const extra = (m as { tool_calls?: unknown }).tool_calls;
    const role = m.role as 'system' | 'user' | 'assistant';
    return { role, content: extra ? text + JSON.stringify(extra) : text, ...(m.name ? { name: m.name } : {}) };
  });
  let total = encodeChat(chat).length + images * IMAGE_PART_TOKENS;
  if (body.tools) total += countTokens(JSON.stringify(body.tools));
  if (body.functions) total += countTokens(JSON.stringify(body.functions));
  return total;
}
