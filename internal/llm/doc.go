// Package llm is Lectern's LLM gateway. It speaks the OpenAI-compatible
// chat-completions protocol (messages, tools, tool_choice, response_format)
// to any server that offers it (OpenAI, DeepSeek, SiliconFlow, Kimi, a local
// vLLM or Ollama) with plain net/http; it streams when asked to
// (Request.OnDelta, see Streaming below).
//
// # Configuration
//
// [ConfigFromEnv] reads the providers:
//
//   - LLM_BASE_URL, LLM_API_KEY, LLM_MODEL give one provider named "default".
//     LLM_MODEL is required with LLM_BASE_URL; LLM_API_KEY may be empty (a
//     local Ollama needs none, and then no Authorization header is sent).
//   - LLM_PROVIDERS_FILE names a JSON file with several providers and the
//     order to try them in (example below). Each provider's key is read from
//     the variable its own api_key_env names and from nowhere else:
//     LLM_API_KEY reaches a file provider only if that provider says
//     "api_key_env":"LLM_API_KEY". A named variable that is empty is a
//     configuration error. Keys cannot be written into the file (unknown
//     fields are rejected). Without fallback_chain the providers are tried
//     in file order; with it, only the listed providers are used, in that
//     order. LLM_MODEL never applies to file providers (setting it without
//     LLM_BASE_URL is an error).
//   - Both set: the env provider "default" comes first and the file's chain
//     follows it as fallbacks. The name "default" is then reserved.
//   - LLM_TIMEOUT_SEC (default 120) is the timeout of one HTTP attempt, in
//     seconds, for the env provider and for file providers without
//     timeout_sec. It must be a finite number in (0, 600]: "0", "none",
//     "inf" and anything above 600 are REJECTED as configuration errors,
//     never read as "no timeout". A programmatic [Provider] with Timeout <= 0
//     gets 120 s and one above 600 s is clamped to 600 s.
//   - LLM_RETRY (default 3) is the number of attempts per target including
//     the first, an integer in [1, 10]; max_attempts overrides it per file
//     provider.
//
// A providers file:
//
//	{"providers": [
//	   {"name": "deepseek", "base_url": "https://api.deepseek.com/v1",
//	    "api_key_env": "DEEPSEEK_API_KEY", "model": "deepseek-chat",
//	    "timeout_sec": 60, "max_attempts": 2},
//	   {"name": "local", "base_url": "http://127.0.0.1:11434/v1", "model": "qwen2.5:7b",
//	    "headers": {"X-Client": "lectern"}}],
//	 "fallback_chain": ["deepseek", "local"]}
//
// Every error from ConfigFromEnv starts with the name of the variable at
// fault ("LLM_TIMEOUT_SEC: ...", "LLM_PROVIDERS_FILE: ..."). No provider at
// all is not an error: the Config is simply not [Config.Configured] and every
// call returns [ErrNotConfigured], so the server still starts.
//
// # Calls
//
// [Gateway.Chat] tries the targets in chain order. On one target it retries
// only retryable failures: a per-attempt timeout, a connection error, or an
// HTTP 408, 409, 425, 429 or 5xx answer. The wait before a retry is
// 250ms·2^(n-1) plus up to 250ms of jitter, capped at Options.MaxBackoff (4s),
// but never shorter than the server's Retry-After (delay-seconds, an HTTP
// date, or retry-after-ms), which itself is capped at Options.MaxRetryAfter
// (30s). If the caller's deadline would pass during that wait the gateway
// stops retrying that target and moves on. Any other failure (a 4xx answer,
// a malformed 200 body, a body over 8 MiB, a certificate error) moves to the
// next target at once. When every target failed, the error wraps every
// target's last error ([errors.As] finds an [*APIError]).
//
// Before each HTTP attempt Chat calls the acquire function it was given and
// releases the slots as soon as that attempt's answer has been read, so a
// backoff sleep holds no concurrency slot. [Client] supplies
// limits.AcquireLLM (tenant total, tenant role, global total, global role)
// and records usage, latency, attempts and failures in a [Meter], which
// also reports each finished call to its Observe function (the server's
// metrics: a [CallEvent] with the provider, the kind and the error's
// [ErrorClass]).
//
// # Streaming
//
// A Request with OnDelta is sent with "stream": true (and stream_options
// include_usage, so the usage is still reported and metered). The answer,
// text/event-stream chunks ending with "data: [DONE]", is read as it
// arrives: each piece of content goes to OnDelta on the caller's goroutine,
// tool-call pieces are assembled by index, and Chat still returns the whole
// Response. The limits are a plain call's: the attempt's timeout covers the
// whole stream, the stream is bounded by MaxResponseBytes, the concurrency
// slots are held until it ends. Retries and fallbacks work as above until
// the first piece has been passed on; a stream that breaks after that ends
// the call with an error, since what was passed on cannot be taken back.
// A server that ignores "stream" and answers plain JSON is read as usual
// and its whole content passed on as one piece.
package llm
