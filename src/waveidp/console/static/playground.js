// The playground: stream chat answers from the gateway and show TTFT, tokens/s and the backend.
// Model text is untrusted: it only ever enters the page as text (textContent / text nodes).
import { EventSourceParserStream } from "./vendor/eventsource-parser-stream.js";

const form = document.getElementById("playground");
const csrf = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];
let controller = null;

function set(pane, cls, text) {
  pane.querySelector("." + cls).textContent = text;
}

async function ask(pane, payload, signal) {
  const answer = pane.querySelector(".answer");
  answer.textContent = "";
  answer.classList.remove("error");
  for (const c of ["backend", "ttft", "tps", "tokens", "total"]) set(pane, c, "…");
  set(pane, "pane-model", payload.model);
  const t0 = performance.now();
  let first = null;
  let chunks = 0;
  let usage = null;
  const res = await fetch(form.dataset.endpoint, {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": csrf },
    body: JSON.stringify(payload),
    signal,
  });
  set(pane, "backend", res.headers.get("x-wave-backend") || "–");
  const type = res.headers.get("content-type") || "";
  if (!res.ok || !type.includes("text/event-stream")) {
    const text = await res.text();
    let message = text;
    try { message = JSON.parse(text).error.message; } catch (e) { /* an HTML refusal: shown as text */ }
    answer.textContent = "HTTP " + res.status + ": " + message;
    answer.classList.add("error");
    return;
  }
  const events = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  for await (const event of events) {
    if (event.data === "[DONE]") break;
    const data = JSON.parse(event.data);
    if (data.error) {
      answer.append(document.createTextNode("\n[error: " + data.error.message + "]"));
      answer.classList.add("error");
      continue;
    }
    if (data.usage) usage = data.usage;
    const delta = data.choices && data.choices[0] && data.choices[0].delta;
    if (delta && delta.content) {
      const now = performance.now();
      if (first === null) {
        first = now;
        set(pane, "ttft", (first - t0).toFixed(0) + " ms");
      }
      chunks += 1;
      answer.append(document.createTextNode(delta.content));
    }
  }
  const end = performance.now();
  const tokens = usage ? usage.completion_tokens : chunks;
  set(pane, "tokens", String(tokens));
  set(pane, "total", ((end - t0) / 1000).toFixed(2) + " s");
  if (first !== null && tokens > 1 && end > first) {
    set(pane, "tps", ((tokens - 1) / ((end - first) / 1000)).toFixed(1));
  } else {
    set(pane, "tps", "–");
  }
  pane.dataset.done = "1";
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  let extra = {};
  const raw = document.getElementById("extra").value.trim();
  if (raw) {
    try { extra = JSON.parse(raw); } catch (err) {
      document.querySelector("#pane-a .answer").textContent = "Extra request fields: not JSON (" + err.message + ")";
      return;
    }
  }
  const base = {
    prompt: document.getElementById("prompt").value,
    system: document.getElementById("system").value,
    max_tokens: parseInt(document.getElementById("max-tokens").value, 10),
    temperature: parseFloat(document.getElementById("temperature").value),
    extra,
  };
  const a = document.getElementById("pane-a");
  const b = document.getElementById("pane-b");
  const modelB = document.getElementById("model-b").value;
  b.hidden = !modelB;
  for (const p of [a, b]) delete p.dataset.done;
  controller = new AbortController();
  document.getElementById("send").disabled = true;
  document.getElementById("stop").disabled = false;
  const runs = [ask(a, { ...base, model: document.getElementById("model-a").value }, controller.signal)];
  if (modelB) runs.push(ask(b, { ...base, model: modelB }, controller.signal));
  await Promise.allSettled(runs);
  document.getElementById("send").disabled = false;
  document.getElementById("stop").disabled = true;
});

document.getElementById("stop").addEventListener("click", () => controller && controller.abort());
