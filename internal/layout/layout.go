// Package layout names every path of a tenant's two storage roots,
// DATA_DIR and UPLOADS_DIR, in one place: a package that stores files
// asks its layout.Tenant for the folder instead of joining a literal, so
// a newcomer finds where anything lives in one hop, and two packages that
// share a folder (examupload writes exams/, exams reads it) cannot drift
// apart. The names are the predecessor's (see
// /work/shared/reference/exams-uploads.md §6 and chat-agent-tenancy.md
// §1.6, §7.1): existing data directories must keep working, so none may
// change.
//
// The tree, with the package that owns (writes) each path; "—" marks a
// path of the predecessor Lectern does not use:
//
//	DATA_DIR/
//	  exams/<exam_id>/manifest.json                  examupload (confirm), demo; read by exams
//	  exams/<exam_id>/paper|scores|answers/<file>    examupload (confirm)
//	  exams/<exam_id>/derived/responses_scored.csv, questions.csv, answers.csv, responses_unscored.csv
//	                                                 examupload (confirm), demo; read by exams
//	  exams/.confirm-<job_id>/                       examupload: a confirm being built, renamed into place
//	  analysis/<exam_id>/draft.json, draft.md        examupload (confirm); read by exams
//	  assignments/<aid>/meta.json requirements.json questions.csv
//	                                                 assignupload (confirm), practice (generate), assignments
//	                                                 (requirements); read by assignments, grading, practice
//	  assignments/<aid>/source/ answer_source/       assignupload (confirm); download serves source/
//	  assignments/<aid>/uploaded_stems|uploaded_answers/UP-<slug>-NNN.md   assignupload
//	  assignments/<aid>/explicit_stems|explicit_ocr/, explicit_questions.csv assignupload (questions OCR)
//	  assignments/<aid>/generated_stems|generated_solutions|explicit_solutions/, assignment.md  practice
//	  assignments/.tmp-<job_id>/                     assignupload: a confirm being built
//	  assignments/generated_from_core/<core_id>/<core_id>_VNN.md, index.json  practice (core variants)
//	  student_profiles/<sid>.json                    students (profile worker); read by assignments,
//	                                                 accounts, tools; server seeds the demo's
//	  student_profiles/.<sid>.json.spare             students: the profile's previous copy (atomicfile.SwapUnsynced)
//	  student_submissions/<sid>/submission_<ts>/…    grading (the per-student copy)
//	  student_submissions/<aid>/<sid>/submission_<ts>/{grading_report.json,feedback.md,review_queue.json,
//	      profile_update_suggestion.md,ocr/…}        grading; read by assignments (progress)
//	  student_chat_sessions/<safe_sid>/index.json, view_state.json, <safe_session>.jsonl
//	                                                 history; read by assignments (progress)
//	  student_chat_sessions/<safe_sid>/.index.json.spare  history: the index's previous copy (atomicfile.SwapUnsynced)
//	  teacher_chat_sessions/<safe_tid>/…             history
//	  teacher_workspaces/<safe_tid>/AGENTS.md SOUL.md USER.md MEMORY.md HEARTBEAT.md, memory/,
//	      proposals/, telemetry/, student_memory/   memory; USER.md read by accounts
//	  teacher_workspaces/<safe_tid>/provider_registry.json, model_config.json, …  modelconfig
//	  lessons/<lesson_id>/lesson.json, sources/, text/, examples.csv, …   tools (lesson.capture);
//	                                                 listed by assignments
//	  core_examples/examples.csv, stems|solutions|models|discussions|variants/<id>.md, assets/, pdf/
//	                                                 tools (core_example.*); read by practice
//	  knowledge/knowledge_point_map.csv              (teacher-provided); read by exams
//	  knowledge/knowledge_points.csv                 —
//	  question_bank/questions.csv                    (teacher-provided); read by practice
//	  staging/*responses*.csv                        (teacher-provided); student import fallback
//	                                                 (students, tools)
//	  skills/<skill_id>/skill.yaml                   (teacher-provided); read by skills
//	  prompts/<name>.md                              (teacher-provided); read by agent
//	  auth/auth_registry.sqlite3 (+ -wal, -shm)      accounts
//	  auth/admin_bootstrap.txt                       accounts (a generated admin password)
//	  _system/auth_token_secret                      cmd/lectern reads it (AUTH_TOKEN_SECRET_FILE default)
//	  llm_routing.json                               — (modelconfig keeps routing per teacher workspace)
//
//	UPLOADS_DIR/
//	  chat_jobs/<job>.job (a finished job: record and events, sealed in one file),
//	      <job>/job.json, events.jsonl (a job written out while running, or older),
//	      request_index/<req>.txt, .journal/seg-*.wal  chat (jobs.NewResidentStore)
//	  chat_attachments/<att_id>/…                    attachments (a job store too)
//	  exam_jobs/<job>/job.json parsed.json draft_override.json paper_text.txt answer_text.txt,
//	      paper/ scores/ answers/ derived/ ocr/      examupload
//	  assignment_jobs/<job>/job.json parsed.json draft_override.json source_text.txt answer_text.txt,
//	      source/ answer_source/ extract/            assignupload
//	  submission_jobs/<job>/job.json report.json files/   grading
//	  profile_jobs/.journal/seg-*.wal (queued updates), <job>/job.json (queued at a stop)
//	                                                 students (profile worker)
//	  uploads/<upload_id>/<file>                     students (POST /upload; the predecessor stored
//	                                                 files flat in UPLOADS_DIR); read by tools
//	  assignment_ocr/, charts/, chart_runs/, chart_envs/, diagnostics.log   —
//
// The job stores' folder names are also what the operator console reads
// (tenantapp.FailedJobs). The files inside a job folder, an exam folder or
// an assignment folder are each domain's own and stay there; this package
// names the folders packages share and the per-id folders several
// packages join.
//
// Per-id methods do not validate the id: the caller has already (exams.ValidID,
// assignments.Service.Resolve, students.ValidID, fsid.Safe …), and keeps
// doing so. Relative() gives the same paths relative to their root, as
// manifests, reports and job records store them.
package layout

import "path/filepath"

// Tenant is the layout of one tenant: its two roots, as the tenant app
// resolved them. A zero root gives paths relative to that root.
type Tenant struct {
	DataDir    string
	UploadsDir string
}

// New is the layout of the tenant whose roots are dataDir and uploadsDir.
func New(dataDir, uploadsDir string) Tenant {
	return Tenant{DataDir: dataDir, UploadsDir: uploadsDir}
}

// Relative is the layout with empty roots: each method returns its path
// relative to its root (DATA_DIR or UPLOADS_DIR), in the OS's separator
// (filepath.ToSlash it for a stored reference).
func Relative() Tenant { return Tenant{} }

func (t Tenant) data(parts ...string) string {
	return filepath.Join(append([]string{t.DataDir}, parts...)...)
}

func (t Tenant) uploads(parts ...string) string {
	return filepath.Join(append([]string{t.UploadsDir}, parts...)...)
}

// CoreVariantsFolder is the folder of assignments/ that holds the variants
// generated from core examples: it sits among the assignments, as in the
// predecessor's layout, but is not one.
const CoreVariantsFolder = "generated_from_core"

// DATA_DIR

// Exams is DATA_DIR/exams: one folder per exam.
func (t Tenant) Exams() string { return t.data("exams") }

// ExamDir is DATA_DIR/exams/<id>.
func (t Tenant) ExamDir(id string) string { return t.data("exams", id) }

// ExamManifest is DATA_DIR/exams/<id>/manifest.json.
func (t Tenant) ExamManifest(id string) string { return t.data("exams", id, "manifest.json") }

// ExamDerived is DATA_DIR/exams/<id>/derived: the exam's response,
// question and answer tables.
func (t Tenant) ExamDerived(id string) string { return t.data("exams", id, "derived") }

// Analysis is DATA_DIR/analysis: one folder per exam.
func (t Tenant) Analysis() string { return t.data("analysis") }

// AnalysisDir is DATA_DIR/analysis/<examID> (draft.json, draft.md).
func (t Tenant) AnalysisDir(examID string) string { return t.data("analysis", examID) }

// Assignments is DATA_DIR/assignments: one folder per assignment, plus
// CoreVariantsFolder.
func (t Tenant) Assignments() string { return t.data("assignments") }

// AssignmentDir is DATA_DIR/assignments/<id>.
func (t Tenant) AssignmentDir(id string) string { return t.data("assignments", id) }

// CoreVariantsDir is DATA_DIR/assignments/generated_from_core/<coreID>.
func (t Tenant) CoreVariantsDir(coreID string) string {
	return t.data("assignments", CoreVariantsFolder, coreID)
}

// StudentProfiles is DATA_DIR/student_profiles.
func (t Tenant) StudentProfiles() string { return t.data("student_profiles") }

// StudentProfile is DATA_DIR/student_profiles/<id>.json.
func (t Tenant) StudentProfile(id string) string { return t.data("student_profiles", id+".json") }

// StudentSubmissions is DATA_DIR/student_submissions.
func (t Tenant) StudentSubmissions() string { return t.data("student_submissions") }

// SubmissionsOfStudent is DATA_DIR/student_submissions/<sid>: the
// student's copy of every graded submission.
func (t Tenant) SubmissionsOfStudent(sid string) string {
	return t.data("student_submissions", sid)
}

// SubmissionsOfAssignment is DATA_DIR/student_submissions/<aid>/<sid>: a
// student's graded submissions of one assignment.
func (t Tenant) SubmissionsOfAssignment(aid, sid string) string {
	return t.data("student_submissions", aid, sid)
}

// StudentChatSessions is DATA_DIR/student_chat_sessions: one folder per
// student (history.OwnerDir).
func (t Tenant) StudentChatSessions() string { return t.data("student_chat_sessions") }

// TeacherChatSessions is DATA_DIR/teacher_chat_sessions: one folder per
// teacher (history.OwnerDir).
func (t Tenant) TeacherChatSessions() string { return t.data("teacher_chat_sessions") }

// TeacherWorkspaces is DATA_DIR/teacher_workspaces.
func (t Tenant) TeacherWorkspaces() string { return t.data("teacher_workspaces") }

// TeacherWorkspace is DATA_DIR/teacher_workspaces/<name>; name is the
// workspace's folder name (memory.WorkspaceName).
func (t Tenant) TeacherWorkspace(name string) string { return t.data("teacher_workspaces", name) }

// Lessons is DATA_DIR/lessons: one folder per lesson.
func (t Tenant) Lessons() string { return t.data("lessons") }

// CoreExamples is DATA_DIR/core_examples.
func (t Tenant) CoreExamples() string { return t.data("core_examples") }

// KnowledgePointMap is DATA_DIR/knowledge/knowledge_point_map.csv
// (question_id,kp_id).
func (t Tenant) KnowledgePointMap() string {
	return t.data("knowledge", "knowledge_point_map.csv")
}

// QuestionBank is DATA_DIR/question_bank.
func (t Tenant) QuestionBank() string { return t.data("question_bank") }

// QuestionBankCSV is DATA_DIR/question_bank/questions.csv.
func (t Tenant) QuestionBankCSV() string { return t.data("question_bank", "questions.csv") }

// Staging is DATA_DIR/staging: response tables the student import falls
// back to.
func (t Tenant) Staging() string { return t.data("staging") }

// Skills is DATA_DIR/skills: the tenant's own skills.
func (t Tenant) Skills() string { return t.data("skills") }

// Prompts is DATA_DIR/prompts: the tenant's prompt overrides.
func (t Tenant) Prompts() string { return t.data("prompts") }

// AuthRegistry is DATA_DIR/auth/auth_registry.sqlite3: the accounts
// database.
func (t Tenant) AuthRegistry() string { return t.data("auth", "auth_registry.sqlite3") }

// AdminBootstrap is DATA_DIR/auth/admin_bootstrap.txt: where a generated
// admin password is written.
func (t Tenant) AdminBootstrap() string { return t.data("auth", "admin_bootstrap.txt") }

// AuthTokenSecret is DATA_DIR/_system/auth_token_secret: the default
// AUTH_TOKEN_SECRET_FILE.
func (t Tenant) AuthTokenSecret() string { return t.data("_system", "auth_token_secret") }

// UPLOADS_DIR

// ChatJobs is UPLOADS_DIR/chat_jobs: the chat job store.
func (t Tenant) ChatJobs() string { return t.uploads("chat_jobs") }

// ChatAttachments is UPLOADS_DIR/chat_attachments: the attachment store
// (a job store: one folder per attachment).
func (t Tenant) ChatAttachments() string { return t.uploads("chat_attachments") }

// ExamJobs is UPLOADS_DIR/exam_jobs: the exam upload job store.
func (t Tenant) ExamJobs() string { return t.uploads("exam_jobs") }

// AssignmentJobs is UPLOADS_DIR/assignment_jobs: the assignment upload
// job store.
func (t Tenant) AssignmentJobs() string { return t.uploads("assignment_jobs") }

// SubmissionJobs is UPLOADS_DIR/submission_jobs: the grading job store.
func (t Tenant) SubmissionJobs() string { return t.uploads("submission_jobs") }

// ProfileJobs is UPLOADS_DIR/profile_jobs: the profile update job store.
func (t Tenant) ProfileJobs() string { return t.uploads("profile_jobs") }

// Uploads is UPLOADS_DIR/uploads: one folder per POST /upload.
func (t Tenant) Uploads() string { return t.uploads("uploads") }
