// Package chat is the chat API: synchronous replies (POST /chat), chat jobs
// (POST /chat/start, GET /chat/status) processed by the tenant's chat
// workers in lanes, idempotency by request_id, and the history they write.
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
	"syscall"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/fsid"
	"github.com/lectern/lectern/internal/history"
	"github.com/lectern/lectern/internal/jobs"
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
	Logger         *slog.Logger
}

// Service is one tenant's chat.
type Service struct {
	cfg    Config
	log    *slog.Logger
	store  *jobs.Store
	lanes  *lanes
	runner *jobs.Runner
	now    func() time.Time

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
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg:       cfg,
		log:       log,
		store:     jobs.NewStore(filepath.Join(cfg.UploadsDir, "chat_jobs")),
		now:       time.Now,
		recent:    map[string]recentJob{},
		inflight:  map[string]int{},
		compacted: map[string]time.Time{},
	}
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
	winner, err := s.claimRequest(requestID, jobID)
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
	rec := map[string]any{
		"job_id": jobID, "request_id": requestID, "session_id": session,
		"status": StatusQueued, "step": "queued", "progress": 0, "role": recordRole,
		"agent_id": str(req.AgentID), "skill_id": str(req.SkillID),
		"teacher_id": teacherID, "student_id": c.StudentID, "assignment_id": str(req.AssignmentID),
		"lane_id": ref.lane, "created_at": jobs.Timestamp(now),
		"principal":           principalRecord(c),
		"request":             requestRecord(req),
		"user_turn_persisted": false,
	}
	if err := s.store.Create(jobID, rec); err != nil {
		s.releaseRequest(requestID)
		return nil, err
	}
	if text := lastUser(req.Messages); strings.TrimSpace(text) != "" {
		if kind, owner, ok := historyOwner(c, session); ok {
			err := s.cfg.History.Append(kind, owner, session, []map[string]any{{
				"ts": jobs.Timestamp(now), "role": "user", "content": text, "request_id": requestID, "source": "start_prewrite",
			}}, indexExtra(c, req, now))
			if err != nil {
				s.log.Error("chat history prewrite failed", "job_id", jobID, "err", err)
				s.store.Update(jobID, func(r map[string]any) error {
					r["status"], r["error"], r["error_detail"] = StatusFailed, "history_prewrite_failed", truncate(err.Error(), 200)
					return nil
				})
				return StartResult{"ok": true, "job_id": jobID, "status": StatusFailed, "lane_id": ref.lane}, nil
			}
			s.store.Update(jobID, func(r map[string]any) error { r["user_turn_persisted"] = true; return nil })
		}
	}
	s.lanes.assign(jobID, ref)
	place.Enqueue(jobID)
	s.mu.Lock()
	s.recent[ref.lane] = recentJob{at: now, fingerprint: fp, jobID: jobID}
	s.mu.Unlock()
	queued, active, pos := s.lanes.load(ref.lane, jobID)
	s.store.Update(jobID, func(r map[string]any) error {
		r["lane_queue_position"], r["lane_queue_size"], r["lane_active"] = pos, queued, active
		return nil
	})
	return StartResult{"ok": true, "job_id": jobID, "status": StatusQueued, "lane_id": ref.lane,
		"lane_queue_position": pos, "lane_queue_size": queued, "lane_active": active}, nil
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

func (s *Service) claimRequest(requestID, jobID string) (string, error) {
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
	_, werr := f.WriteString(jobID)
	if serr := f.Sync(); werr == nil {
		werr = serr
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return jobID, werr
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
	var legacy map[string]string
	if data, err := os.ReadFile(filepath.Join(s.store.Dir(), "request_index.json")); err == nil && json.Unmarshal(data, &legacy) == nil {
		if id := legacy[requestID]; id != "" {
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

func requestRecord(req *Request) map[string]any {
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
	return map[string]any{
		"messages": msgs, "role": opt(req.Role), "agent_id": opt(req.AgentID), "skill_id": opt(req.SkillID),
		"teacher_id": opt(req.TeacherID), "student_id": opt(req.StudentID), "assignment_id": opt(req.AssignmentID),
		"assignment_date": opt(req.AssignmentDate), "auto_generate_assignment": auto,
	}
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

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// flock takes an exclusive, non-blocking lock on path: held by a live
// process only, released by the kernel when that process dies, so a claim
// can never be stolen from a job that is still running.
func flock(path string) (release func(), ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	fmt.Fprintf(f, `{"pid":%d,"ts":%q}`, os.Getpid(), jobs.Timestamp(time.Now()))
	return func() {
		os.Remove(path)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, true, nil
}
