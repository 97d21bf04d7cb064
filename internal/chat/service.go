// Package chat is the chat API: synchronous replies (POST /chat), chat jobs
// (POST /chat/start, GET /chat/status) processed by the tenant's chat
// workers in lanes, idempotency by request_id, and the history they write.
//
// A job's progress is also a stream of events (GET /chat/stream, Server-Sent
// Events: job state changes, model rounds, tool calls and results, the
// reply's text as the model streams it, its end), kept per job, resumable
// by event id (events.go, stream.go). A message may reference chat
// attachments (internal/attachments); their text reaches the model as
// context for that turn (attach.go).
package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/attachments"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/fsid"
	"github.com/lectern/lectern/internal/history"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/policy"
)

// Job statuses.
const (
	StatusQueued     = "queued"
	StatusProcessing = "processing"
	StatusDone       = "done"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// BusyReply is what a student is told while a reply is still being
// generated for them (synchronous /chat only; jobs wait their turn).
const BusyReply = "正在生成上一条回复，请稍候再试。"

// ErrNotConfigured is returned by a Replier when no LLM is configured.
var ErrNotConfigured = errors.New("llm_not_configured")

// NotConfiguredHints tell an operator how to configure the LLM.
var notConfiguredHints = []string{
	"Set LLM_BASE_URL, LLM_API_KEY and LLM_MODEL (any OpenAI-compatible server), or LLM_PROVIDERS_FILE for several providers.",
	"请设置 LLM_BASE_URL、LLM_API_KEY 和 LLM_MODEL 后重启服务。",
}

// Replier produces the assistant's reply (the agent loop). session is the
// conversation's session id ("" when it has none).
type Replier interface {
	Reply(ctx context.Context, c caller.Principal, session string, msgs []Message, agentID string) (string, error)
}

// Config configures one tenant's chat.
type Config struct {
	UploadsDir   string
	History      *history.Store
	Replier      Replier
	Resolver     caller.Resolver
	Workers      int           // CHAT_WORKER_POOL_SIZE (4)
	LaneMaxQueue int           // CHAT_LANE_MAX_QUEUE (6)
	Debounce     time.Duration // CHAT_LANE_DEBOUNCE_MS (500 ms); 0 disables
	// MaxQueued bounds the tenant's queued chat jobs over all lanes
	// (JOB_QUEUE_MAX, 100); 0 means no bound beyond the lanes'.
	MaxQueued int
	// OnStudentReply, when set, is told about every student reply (the
	// profile-update producer).
	OnStudentReply func(studentID, assignmentID, userText, reply string)
	// OnTeacherReply, when set, is told about every finished teacher turn
	// (the automatic teacher-memory proposals), once the turn is written to
	// the history and the reply is out: on the job's goroutine after the
	// job is done, on a goroutine of its own after a POST /chat reply
	// (whose history write failure is only logged, as before). Never for
	// a failed turn.
	OnTeacherReply func(teacherID, session, userText, reply string)
	Logger         *slog.Logger

	// GET /chat/stream bounds: open streams of the tenant (past it 429;
	// 0 → 64), one connection's duration (0 → 10 min) and events (0 →
	// 10000), and the idle time before a keep-alive comment (0 → 15 s).
	StreamMaxOpen     int
	StreamMaxDuration time.Duration
	StreamMaxEvents   int
	StreamHeartbeat   time.Duration

	// Attachments, when set, gives a message the text of the attachments
	// it references (POST /chat/attachments); nil: references are refused
	// with a warning.
	Attachments *attachments.Service
	// AttachmentWait bounds how long a job waits for a referenced
	// attachment whose text is still being extracted (0 → 2 min).
	AttachmentWait time.Duration
}

// Service is one tenant's chat.
type Service struct {
	cfg    Config
	log    *slog.Logger
	store  *jobs.Store
	lanes  *lanes
	runner *jobs.Runner
	now    func() time.Time

	events      *eventHub
	openStreams atomic.Int64
	streamsDone chan struct{}
	closeOnce   sync.Once

	// prewrites: job id → the start's write of its user turn (this
	// process's starts only); bg tracks those writes.
	prewrites sync.Map
	// commits: job id → the start's commit of its record, which the job
	// runs beside (this process's starts only): see durable.
	commits sync.Map
	// fresh: the jobs this process started and has not run yet (any other
	// job a worker runs is resumed: it checks the history first).
	fresh sync.Map
	bg    sync.WaitGroup

	legacyOnce sync.Once
	legacy     map[string]string // the predecessor's request_index.json

	laneLocks [64]sync.Mutex
	mu        sync.Mutex
	recent    map[string]recentJob // lane → last job, for the debounce
	inflight  map[string]int       // student → synchronous replies running
	compacted map[string]time.Time // teacher session → last compaction
}

type recentJob struct {
	at          time.Time
	fingerprint string
	jobID       string
}

// New builds the chat service; Runner is its worker pool.
func New(cfg Config) *Service {
	if cfg.Workers < 1 {
		cfg.Workers = 4
	}
	if cfg.LaneMaxQueue < 1 {
		cfg.LaneMaxQueue = 6
	}
	if cfg.StreamMaxOpen < 1 {
		cfg.StreamMaxOpen = DefaultStreamMaxOpen
	}
	if cfg.StreamMaxDuration <= 0 {
		cfg.StreamMaxDuration = DefaultStreamMaxDuration
	}
	if cfg.StreamMaxEvents < 1 {
		cfg.StreamMaxEvents = DefaultStreamMaxEvents
	}
	if cfg.StreamHeartbeat <= 0 {
		cfg.StreamHeartbeat = DefaultStreamHeartbeat
	}
	if cfg.AttachmentWait <= 0 {
		cfg.AttachmentWait = defaultAttachmentWait
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg:       cfg,
		log:       log,
		store:     jobs.NewResidentStore(layout.Tenant{UploadsDir: cfg.UploadsDir}.ChatJobs(), jobs.JournalOptions{Logger: log}),
		now:       time.Now,
		recent:    map[string]recentJob{},
		inflight:  map[string]int{},
		compacted: map[string]time.Time{},

		streamsDone: make(chan struct{}),
	}
	s.store.SetEffectReplay(s.restoreHistory)
	s.events = newEventHub(s.store.JobDir, func(id string) []byte { return s.store.SealedFile(id, eventsFile) })
	s.lanes = newLanes(s.laneOf)
	s.runner = jobs.NewRunner(jobs.Options{
		Kind: "chat", Store: s.store, Workers: cfg.Workers, Queue: s.lanes, Process: s.process, Logger: log,
		MaxQueued: cfg.MaxQueued,
	})
	return s
}

// Runner is the chat worker pool.
func (s *Service) Runner() *jobs.Runner { return s.runner }

// laneOf reads a queued job's lane from its record (jobs resumed at start).
func (s *Service) laneOf(id string) (laneRef, bool) {
	rec, err := s.store.Load(id)
	if err != nil {
		return laneRef{}, false
	}
	ref := laneRef{lane: strField(rec, "lane_id")}
	if rec["role"] == caller.RoleStudent {
		if sid := strField(rec, "student_id"); sid != "" {
			ref.group = "student:" + fsid.Safe(sid, "student")
		}
	}
	return ref, ref.lane != ""
}

func (s *Service) laneLock(lane string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(lane))
	return &s.laneLocks[h.Sum32()%uint32(len(s.laneLocks))]
}

// StartResult is the body of a /chat/start answer.
type StartResult map[string]any

// busyRetry is the Retry-After of a chat refused while its lane or the
// tenant's queue is full.
const busyRetry = 2 * time.Second

// Start queues a chat job (POST /chat/start).
func (s *Service) Start(p caller.Principal, req *Request) (StartResult, error) {
	requestID := str(req.RequestID)
	if requestID == "" {
		return nil, errNoRequestID
	}
	if res, ok := s.existing(requestID); ok {
		return res, nil
	}
	c, err := runAs(p, req)
	if err != nil {
		return nil, err
	}
	now := s.now()
	session := sessionFor(c, req, now)
	ref := laneFor(c, session, requestID)
	fp := fingerprint(req)
	usable, warnings := s.checkAttachments(c, session, req)

	mu := s.laneLock(ref.lane)
	mu.Lock()
	defer mu.Unlock()

	if res, ok := s.debounced(ref.lane, fp, requestID, now); ok {
		return res, nil
	}
	queued, active, _ := s.lanes.load(ref.lane, "")
	if busy := queued + boolInt(active); busy >= s.cfg.LaneMaxQueue {
		return nil, &fault.Error{Code: fault.TooMany, Detail: fmt.Sprintf("当前会话排队过多（lane=%d），请稍后重试。", busy), RetryAfter: busyRetry}
	}
	place, err := s.runner.Reserve()
	if err != nil {
		return nil, &fault.Error{Code: fault.TooMany, Detail: "当前排队的对话过多，请稍后重试。(too many chat jobs are queued; retry later)", RetryAfter: busyRetry}
	}
	defer place.Release()

	jobID := "cjob_" + randomHex(6)
	winner, err := s.claim(requestID, jobID)
	if err != nil {
		return nil, err
	}
	if winner != jobID {
		if res, ok := s.existing(requestID); ok {
			return res, nil
		}
		return nil, fault.New(fault.Conflict, "request_id already claimed")
	}
	teacherID := ""
	if c.Role == caller.RoleTeacher {
		teacherID = c.TeacherID
	}
	recordRole := string(c.Role)
	if recordRole == "" {
		recordRole = "unknown"
	}
	// One durable write before the answer (what a start costs): the record
	// with the request_id's claim. The user's turn goes into the history meanwhile,
	// without holding the answer: the job waits for it before it appends
	// the reply (so the turns keep their order), and when it is missing
	// (its write failed, or the process died first) the job writes it
	// itself (hasUserTurn), as a job resumed after a restart does. The
	// record's lane place is the one the job is about to get
	// (/chat/status shows the live one).
	text := lastUser(req.Messages)
	kind, owner, hasHistory := historyOwner(c, session)
	prewrite := hasHistory && strings.TrimSpace(text) != ""
	waiting, running, _ := s.lanes.load(ref.lane, "")
	rec := map[string]any{
		"job_id": jobID, "request_id": requestID, "session_id": session,
		"status": StatusQueued, "step": "queued", "progress": 0, "role": recordRole,
		"agent_id": str(req.AgentID), "skill_id": str(req.SkillID),
		"teacher_id": teacherID, "student_id": c.StudentID, "assignment_id": str(req.AssignmentID),
		"lane_id": ref.lane, "created_at": jobs.Timestamp(now),
		"principal":           principalRecord(c),
		"request":             requestRecord(req, usable),
		"user_turn_persisted": prewrite,
		"lane_queue_position": waiting + 1, "lane_queue_size": waiting + 1, "lane_active": running,
	}
	if len(warnings) > 0 {
		rec["warnings"] = warnings
	}
	if prewrite {
		pw := &prewriteState{done: make(chan struct{})}
		s.prewrites.Store(jobID, pw)
		s.bg.Go(func() {
			defer close(pw.done)
			// Not synced: the job writes the turn itself when a crash lost it.
			if err := s.cfg.History.AppendAs(history.Volatile, kind, owner, session, []map[string]any{{
				"ts": jobs.Timestamp(now), "role": "user", "content": text, "request_id": requestID, "source": "start_prewrite",
			}}, indexExtra(c, req, now)); err != nil {
				s.log.Error("chat history prewrite failed: the job writes the turn with its reply", "job_id", jobID, "err", err)
			} else {
				pw.ok = true
			}
		})
	}
	// The record and the request_id's claim become durable together: one
	// journal record shared with the starts running meanwhile.
	commit, err := s.store.Begin(jobID, rec, jobs.File{Path: s.requestPath(requestID), Data: []byte(jobID)})
	if err != nil {
		s.releaseRequest(requestID)
		return nil, err
	}
	// job.queued goes first, before a worker can take the job. The job is
	// queued while the record's sync runs, and runs beside it up to its
	// first effect, which waits for the sync (durable): the answer waits
	// for durability, the model's first token does not.
	s.events.begin(jobID)
	s.emit(jobID, EventJobQueued, map[string]any{"status": StatusQueued, "lane_id": ref.lane,
		"lane_queue_position": waiting + 1, "lane_queue_size": waiting + 1, "lane_active": running})
	pending := &startCommit{done: make(chan struct{})}
	s.commits.Store(jobID, pending)
	s.fresh.Store(jobID, struct{}{})
	s.lanes.assign(jobID, ref)
	place.Enqueue(jobID)
	pending.err = commit()
	close(pending.done)
	if pending.err != nil {
		// The entry stays for the job, which ends without effect.
		s.fresh.Delete(jobID)
		s.releaseRequest(requestID)
		return nil, pending.err
	}
	s.commits.Delete(jobID) // durable: the job need not ask
	s.mu.Lock()
	s.recent[ref.lane] = recentJob{at: now, fingerprint: fp, jobID: jobID}
	s.mu.Unlock()
	queued, active, pos := s.lanes.load(ref.lane, jobID)

	return withWarnings(StartResult{"ok": true, "job_id": jobID, "status": StatusQueued, "lane_id": ref.lane,
		"lane_queue_position": pos, "lane_queue_size": queued, "lane_active": active}, warnings), nil
}

// prewriteState is a start's write of its user turn, as its job sees it:
// ok is set (written) when done is closed.
type prewriteState struct {
	done chan struct{}
	ok   bool
}

// startCommit is a start's commit of its job's record, as the job sees it
// while it runs beside it: err is set when done is closed.
type startCommit struct {
	done chan struct{}
	err  error
}

// errStartFailed ends a job whose start failed to make its record durable
// (its caller was told the start failed): the job leaves no effect.
var errStartFailed = errors.New("chat job's start was not made durable: the job is dropped")

// durable returns once job id's record is durable, or errStartFailed if
// its start's commit failed. Every effect of a job (a record update, a
// history write) waits for it; what comes before (the prompt, the model's
// call, the streamed events of a job nobody was told the id of yet) does
// not. Jobs this process did not start (resumed ones) are durable.
func (s *Service) durable(id string) error {
	v, ok := s.commits.Load(id)
	if !ok {
		return nil
	}
	c := v.(*startCommit)
	<-c.done
	s.commits.Delete(id)
	if c.err != nil {
		return errStartFailed
	}
	return nil
}

// withWarnings adds the start's warnings (attachments not used) to res.
func withWarnings(res StartResult, warnings []string) StartResult {
	if len(warnings) > 0 {
		res["warnings"] = warnings
	}
	return res
}

// debounced maps requestID to the lane's last job when it carried the same
// message less than the debounce window ago and has not finished.
func (s *Service) debounced(lane, fp, requestID string, now time.Time) (StartResult, bool) {
	if s.cfg.Debounce <= 0 {
		return nil, false
	}
	s.mu.Lock()
	r, ok := s.recent[lane]
	s.mu.Unlock()
	if !ok || r.fingerprint != fp || now.Sub(r.at) > s.cfg.Debounce {
		return nil, false
	}
	rec, err := s.store.Load(r.jobID)
	if err != nil || (rec["status"] != StatusQueued && rec["status"] != StatusProcessing) {
		return nil, false
	}
	if winner, err := s.claimRequest(requestID, r.jobID); err != nil || winner != r.jobID {
		return nil, false
	}
	return StartResult{"ok": true, "job_id": r.jobID, "status": rec["status"], "lane_id": lane, "debounced": true}, true
}

// existing answers a request_id that already has a job.
func (s *Service) existing(requestID string) (StartResult, bool) {
	jobID, ok := s.lookupRequest(requestID)
	if !ok {
		return nil, false
	}
	rec, err := s.store.Load(jobID)
	if err != nil {
		return nil, false
	}
	status := rec["status"]
	if status == nil {
		status = StatusQueued
	}
	return StartResult{"ok": true, "job_id": jobID, "status": status}, true
}

// Idempotency: request_index/<safe id>.txt holds the job id; creating it
// with O_EXCL wins the claim, across restarts and processes.
func (s *Service) requestPath(requestID string) string {
	return filepath.Join(s.store.Dir(), "request_index", fsid.Safe(requestID, "req")+".txt")
}

// claimRequest maps requestID to the existing job jobID (a debounced
// start), durably.
func (s *Service) claimRequest(requestID, jobID string) (string, error) {
	winner, err := s.claim(requestID, jobID)
	if err == nil && winner == jobID {
		err = atomicfile.Sync(s.requestPath(requestID))
	}
	return winner, err
}

// claim maps requestID to jobID unless another job has it (winner is then
// that job). The map file is written, visible at once, not synced: the
// new job's record, or claimRequest, makes it durable.
func (s *Service) claim(requestID, jobID string) (winner string, err error) {
	p := s.requestPath(requestID)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		if id, ok := s.lookupRequest(requestID); ok {
			return id, nil
		}
		// A stale map file (its job is gone) was removed: try once more.
		f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	}
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(jobID)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return "", err
	}
	return jobID, nil
}

func (s *Service) releaseRequest(requestID string) { os.Remove(s.requestPath(requestID)) }

// lookupRequest finds the job of a request_id: the map file, else the
// predecessor's request_index.json; a mapping to a missing job is stale.
func (s *Service) lookupRequest(requestID string) (string, bool) {
	p := s.requestPath(requestID)
	if data, err := os.ReadFile(p); err == nil {
		id := strings.TrimSpace(string(data))
		if id == "" {
			return "", false // being written by the claimer
		}
		if _, err := s.store.Load(id); err == nil {
			return id, true
		}
		os.Remove(p)
	}
	s.legacyOnce.Do(func() {
		// The predecessor's map, read once: Lectern never writes it.
		if data, err := os.ReadFile(filepath.Join(s.store.Dir(), "request_index.json")); err == nil {
			json.Unmarshal(data, &s.legacy)
		}
	})
	if s.legacy != nil {
		if id := s.legacy[requestID]; id != "" {
			if _, err := s.store.Load(id); err == nil {
				return id, true
			}
		}
	}
	return "", false
}

// Status returns job id with its live lane position (GET /chat/status). It
// never re-queues anything: jobs resume once, when the tenant starts.
func (s *Service) Status(p caller.Principal, id string) (map[string]any, error) {
	rec, err := s.store.Load(id)
	if err != nil {
		return nil, err
	}
	if !mayRead(p, rec, s.cfg.Resolver) {
		return nil, ErrForbiddenJob
	}
	if lane := strField(rec, "lane_id"); lane != "" {
		queued, active, pos := s.lanes.load(lane, id)
		rec["lane_queue_position"], rec["lane_queue_size"], rec["lane_active"] = pos, queued, active
	}
	return rec, nil
}

// ErrForbiddenJob: the job belongs to another principal (the
// predecessor's 403 forbidden_chat_job).
var ErrForbiddenJob error = fault.New(fault.Forbidden, "forbidden_chat_job")

// mayRead reports whether p may see job rec: the job's principal is its
// owner (policy.Owns).
func mayRead(p caller.Principal, rec map[string]any, res caller.Resolver) bool {
	return policy.Owns(p, principalOf(rec, res))
}

// requestRecord is the request as the job keeps it, with the attachments
// it may use.
func requestRecord(req *Request, attachmentIDs []string) map[string]any {
	msgs := make([]map[string]any, 0, len(req.Messages))
	for _, m := range req.Messages {
		msgs = append(msgs, map[string]any{"role": m.Role, "content": m.Content})
	}
	var auto any
	if req.AutoGenerateAssignment != nil {
		auto = *req.AutoGenerateAssignment
	}
	opt := func(p *string) any {
		if p == nil {
			return nil
		}
		return *p
	}
	out := map[string]any{
		"messages": msgs, "role": opt(req.Role), "agent_id": opt(req.AgentID), "skill_id": opt(req.SkillID),
		"teacher_id": opt(req.TeacherID), "student_id": opt(req.StudentID), "assignment_id": opt(req.AssignmentID),
		"assignment_date": opt(req.AssignmentDate), "auto_generate_assignment": auto,
	}
	if len(attachmentIDs) > 0 {
		out["attachments"] = refsOf(attachmentIDs)
	}
	return out
}

// historyOwner says where a conversation's history goes: a student with an
// id and a session, or a teacher.
func historyOwner(c caller.Principal, session string) (history.Kind, string, bool) {
	switch {
	case c.Role == caller.RoleStudent && c.StudentID != "" && session != "":
		return history.Student, c.StudentID, true
	case c.Role == caller.RoleTeacher:
		return history.Teacher, c.TeacherID, true
	}
	return "", "", false
}

func indexExtra(c caller.Principal, req *Request, now time.Time) map[string]any {
	if c.Role != caller.RoleStudent {
		return nil
	}
	return map[string]any{"assignment_id": str(req.AssignmentID), "date": parseDate(str(req.AssignmentDate), now)}
}

func strField(rec map[string]any, k string) string {
	v, _ := rec[k].(string)
	return v
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
