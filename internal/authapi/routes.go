package authapi

import "github.com/lectern/lectern/internal/policy"

// Register registers every /auth/* route with its rule. The seven
// login-flow routes are policy.Login (the predecessor's exempt paths:
// anyone, whatever stale token the request carries); the
// teacher-issued student password reset needs a teacher (or the admin);
// every other /auth/admin/* route needs the tenant admin, in every mode.
func (a *API) Register(m *policy.Mux) {
	m.HandleFunc("POST /auth/student/identify", policy.Login, a.studentIdentify)
	m.HandleFunc("POST /auth/student/login", policy.Login, a.studentLogin)
	m.HandleFunc("POST /auth/student/set-password", policy.Login, a.studentSetPassword)

	m.HandleFunc("POST /auth/teacher/identify", policy.Login, a.teacherIdentify)
	m.HandleFunc("POST /auth/teacher/login", policy.Login, a.teacherLogin)
	m.HandleFunc("POST /auth/teacher/set-password", policy.Login, a.teacherSetPassword)
	m.HandleFunc("POST /auth/teacher/student/reset-passwords", policy.Teacher, a.resetStudentPasswords)

	m.HandleFunc("POST /auth/admin/login", policy.Login, a.adminLogin)
	m.HandleFunc("GET /auth/admin/teacher/list", policy.Admin, a.listTeachers)
	m.HandleFunc("POST /auth/admin/teacher/create", policy.Admin, a.createTeacher)
	m.HandleFunc("POST /auth/admin/teacher/set-disabled", policy.Admin, a.setTeacherDisabled)
	m.HandleFunc("POST /auth/admin/teacher/reset-password", policy.Admin, a.resetTeacherPassword)
	m.HandleFunc("POST /auth/admin/student/reset-token", policy.Admin, a.resetStudentToken)
	m.HandleFunc("POST /auth/admin/teacher/reset-token", policy.Admin, a.resetTeacherToken)
	m.HandleFunc("POST /auth/admin/student/export-tokens", policy.Admin, a.exportStudentTokens)
	m.HandleFunc("POST /auth/admin/teacher/export-tokens", policy.Admin, a.exportTeacherTokens)
}
