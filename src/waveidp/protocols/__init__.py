"""The client APIs the gateway speaks besides OpenAI's chat completions, as pure translations to
and from chat completions: OpenAI's Responses API (`responses`) and Anthropic's Messages API
(`anthropic`). Requests, answers and server-sent event streams are functions over dicts and
bytes; nothing here does IO, so the gateway (for backends that lack a route) and `wave emulate`
(for the routes its engine kind has) share one translation.

    chat = anthropic.request_to_chat(body)                 # POST /v1/messages -> chat body
    message = anthropic.answer_from_chat(chat_answer, body) # chat answer -> Anthropic message
    stream = anthropic.StreamFromChat(body)                 # chat SSE bytes -> Anthropic SSE bytes
    out = stream.feed(events) + stream.close()
"""
