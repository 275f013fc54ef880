// The AI SDK's own chat transport and stream reader against a ChatView in the Vercel
// format: what useChat does with a response, without a browser. Prints the last
// message and any error as JSON.
import { createRequire } from "node:module";
import path from "node:path";

// Resolved from the working directory (the test's npm folder), not from this file's.
const require = createRequire(path.join(process.cwd(), "index.js"));
const { DefaultChatTransport, readUIMessageStream } = await import(require.resolve("ai"));

const [url] = process.argv.slice(2);
const transport = new DefaultChatTransport({ api: url });
const stream = await transport.sendMessages({
  chatId: "chat-1",
  messages: [{ id: "user-1", role: "user", parts: [{ type: "text", text: "Hello" }] }],
  trigger: "submit-message",
  messageId: undefined,
  abortSignal: undefined,
});
const errors = [];
let message = null;
for await (const snapshot of readUIMessageStream({ stream, onError: (error) => errors.push(String(error)) })) {
  message = snapshot;
}
console.log(JSON.stringify({ message, errors }));
