// Package jobs is the small background job runner shared by every kind of
// tenant worker (chat, assignment upload, exam upload, profile update).
//
// A [Store] keeps one kind's job records on disk as <dir>/<id>/job.json,
// free-form JSON objects compatible with the predecessor's files. A [Runner]
// feeds job ids from a [Queue] to a bounded pool of workers. Idle workers
// block on channels, so an idle tenant costs no CPU, and [Runner.Stop]
// cancels and waits for every goroutine the runner started.
package jobs
