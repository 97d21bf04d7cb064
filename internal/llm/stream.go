package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"strings"
)

// maxStreamLine bounds one line of a streamed answer; the whole stream is
// bounded by MaxResponseBytes like a plain answer.
const maxStreamLine = 1 << 20

// isEventStream reports whether a Content-Type is text/event-stream.
func isEventStream(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "text/event-stream"
}

// wireChunk is the part of one streamed chat-completions chunk the gateway
// reads.
type wireChunk struct {
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content   json.RawMessage     `json:"content"`
			ToolCalls []wireToolCallDelta `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *Usage          `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// wireToolCallDelta is one piece of a tool call: the first names it (id,
// type, function name), the next ones add to its arguments.
type wireToolCallDelta struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

// streamState assembles a streamed answer.
type streamState struct {
	content  strings.Builder
	calls    []*ToolCall
	args     []*strings.Builder
	finish   string
	usage    *Usage
	size     int
	done     bool // [DONE] seen
	anyChunk bool
}

// readStream reads a text/event-stream answer (OpenAI's streamed
// chat-completions: "data: {chunk}" events ending with "data: [DONE]"),
// passing each piece of content to onDelta as it arrives, and returns the
// assembled answer. A stream that breaks off (a read error, or an end
// without [DONE] or a finish reason) is a retryable failure; the gateway
// retries it only if nothing was passed on yet.
func readStream(actx context.Context, t *target, body io.Reader, onDelta func(string)) result {
	st := &streamState{}
	br := bufio.NewReaderSize(body, 16<<10)
	var data bytes.Buffer // the data lines of the event being read
	for {
		line, err := readLine(br)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				return result{err: fmt.Errorf("llm: provider %q: %w: a stream line is longer than %d bytes", t.Name, ErrMalformedResponse, maxStreamLine)}
			}
			if errors.Is(err, io.EOF) {
				if data.Len() > 0 { // the last event had no blank line after it
					if r, stop := st.event(t, data.Bytes(), onDelta); stop {
						return r
					}
				}
				if st.done || (st.anyChunk && st.finish != "") {
					return result{resp: st.response()}
				}
				return result{err: fmt.Errorf("llm: provider %q: %w: the stream ended before [DONE]", t.Name, ErrMalformedResponse), retryable: true}
			}
			return transportFailure(actx, t, err)
		}
		if st.size += len(line) + 1; st.size > MaxResponseBytes {
			return result{err: fmt.Errorf("llm: provider %q: %w: stream larger than %d bytes", t.Name, ErrMalformedResponse, MaxResponseBytes)}
		}
		switch {
		case len(line) == 0: // end of an event
			if data.Len() == 0 {
				continue
			}
			r, stop := st.event(t, data.Bytes(), onDelta)
			data.Reset()
			if stop {
				return r
			}
		case line[0] == ':': // a comment (keep-alive)
		case bytes.HasPrefix(line, []byte("data:")):
			v := bytes.TrimPrefix(line[len("data:"):], []byte(" "))
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.Write(v)
		default: // event:, id:, retry: and unknown fields carry nothing for us
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns one line without its end (\n, \r\n).
func readLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(out)+len(frag) > maxStreamLine {
			return nil, errLineTooLong
		}
		out = append(out, frag...)
		switch {
		case err == nil:
			return bytes.TrimRight(out, "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(out) > 0:
			return bytes.TrimRight(out, "\r\n"), nil
		default:
			return nil, err
		}
	}
}

// event handles one event's data; stop is set when the stream is over
// (r is then the outcome).
func (st *streamState) event(t *target, data []byte, onDelta func(string)) (r result, stop bool) {
	if bytes.Equal(bytes.TrimSpace(data), []byte("[DONE]")) {
		st.done = true
		return result{resp: st.response()}, true
	}
	var c wireChunk
	if err := json.Unmarshal(data, &c); err != nil {
		return result{err: fmt.Errorf("llm: provider %q: %w: stream chunk: %v", t.Name, ErrMalformedResponse, err)}, true
	}
	if len(c.Error) > 0 && string(c.Error) != "null" {
		return result{err: fmt.Errorf("llm: provider %q: %w: error in the stream: %s", t.Name, ErrMalformedResponse, truncateUTF8(string(c.Error), maxErrorBodyKeep))}, true
	}
	st.anyChunk = true
	if c.Usage != nil {
		u := *c.Usage
		st.usage = &u
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue // only the first choice is used, as for a plain answer
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			st.finish = *ch.FinishReason
		}
		text, err := decodeContent(ch.Delta.Content)
		if err != nil {
			return result{err: fmt.Errorf("llm: provider %q: %w: delta content: %v", t.Name, ErrMalformedResponse, err)}, true
		}
		if text != "" {
			st.content.WriteString(text)
			onDelta(text)
		}
		for _, tc := range ch.Delta.ToolCalls {
			if err := st.addToolCall(tc); err != nil {
				return result{err: fmt.Errorf("llm: provider %q: %w: %v", t.Name, ErrMalformedResponse, err)}, true
			}
		}
	}
	return result{}, false
}

// maxStreamedToolCalls bounds the tool calls of one streamed answer.
const maxStreamedToolCalls = 128

// addToolCall merges one tool-call piece: by its index, or, for servers
// that send none, as a new call when it carries an id and else as more of
// the last one.
func (st *streamState) addToolCall(tc wireToolCallDelta) error {
	i := len(st.calls) - 1
	switch {
	case tc.Index != nil:
		i = *tc.Index
	case tc.ID != "" || i < 0:
		i = len(st.calls)
	}
	if i < 0 || i >= maxStreamedToolCalls {
		return fmt.Errorf("tool call index %d out of range", i)
	}
	for len(st.calls) <= i {
		st.calls = append(st.calls, &ToolCall{})
		st.args = append(st.args, &strings.Builder{})
	}
	call := st.calls[i]
	if tc.ID != "" {
		call.ID = tc.ID
	}
	if tc.Type != "" {
		call.Type = tc.Type
	}
	if tc.Function.Name != "" {
		call.Function.Name += tc.Function.Name
	}
	if raw := tc.Function.Arguments; len(raw) > 0 && string(raw) != "null" {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			st.args[i].WriteString(s)
		} else {
			// Some servers send the arguments as an object, whole.
			args, err := decodeArguments(raw)
			if err != nil {
				return fmt.Errorf("tool_calls[%d].function.arguments: %v", i, err)
			}
			st.args[i].WriteString(args)
		}
	}
	return nil
}

// response is the assembled answer.
func (st *streamState) response() *Response {
	out := &Response{Content: st.content.String(), FinishReason: st.finish}
	if st.usage != nil {
		out.Usage = *st.usage
		if out.Usage.TotalTokens == 0 {
			out.Usage.TotalTokens = out.Usage.PromptTokens + out.Usage.CompletionTokens
		}
	}
	for i, c := range st.calls {
		call := *c
		if call.Function.Name == "" && st.args[i].Len() == 0 {
			continue // an index the server skipped
		}
		if call.Type == "" {
			call.Type = "function"
		}
		if call.ID == "" {
			call.ID = fmt.Sprintf("call_%d_%08x", i, rand.Uint32())
		}
		call.Function.Arguments = st.args[i].String()
		out.ToolCalls = append(out.ToolCalls, call)
	}
	return out
}
