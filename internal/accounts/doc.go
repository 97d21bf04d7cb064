// Package accounts is a tenant's account registry: students, teachers and
// tenant admins, their passwords and per-subject login tokens, lockout,
// access tokens (HS256 JWTs) and the audit log. It is the domain layer of
// the predecessor's /auth/* routes (reference auth-and-access.md §4–§6);
// it has no HTTP code: errors carry the predecessor's machine codes
// (Code) for the HTTP layer to map.
//
// # Storage
//
// DATA_DIR/auth/auth_registry.sqlite3, the predecessor's file, in WAL
// mode, with its tables student_auth, teacher_auth, admin_auth and
// auth_audit_log. Migrations are versioned with PRAGMA user_version
// (a predecessor file has 0); they only create missing tables and add
// columns (failed_window_start on the three credential tables,
// admin_auth.token_version, auth_audit_log.outcome and client_addr) and
// indexes, so a predecessor registry opens and keeps working.
//
// # Passwords
//
// New hashes are Argon2id in PHC form. The predecessor's
// pbkdf2_sha256$<iterations>$<salt>$<digest> hashes verify, and a
// successful login replaces them (and Argon2id hashes with other costs)
// by a hash with the current parameters. Logins for unknown, disabled,
// locked or password-less subjects spend a dummy Argon2id computation so
// that their timing matches a wrong password; all failures are masked as
// invalid_credential.
//
// # Lockout rule
//
// Failures are counted in a window that opens at the first failure and
// lasts LockWindow (default 24 h). The LockThreshold-th failure in the
// window (default 5) locks the account for LockDuration (default 15
// min); every further failure in the same window — possible only once
// the lock has expired — locks it again for twice the previous duration
// (30 min, 1 h, 2 h…), never longer than LockWindow. An expiring lock
// does not reset the count (the predecessor reset it when locking, which
// gave an attacker 5 guesses every 15 minutes forever); only a
// successful login, a password or token reset by a teacher or admin, or
// the end of the window does. With the defaults an attacker gets at most
// 11 wrong guesses per window (5, then one after each lock: 15 min, 30
// min … 16 h), i.e. about 11 a day instead of the predecessor's 480. While locked, attempts are rejected
// without checking the credential and are not counted (the lock is not
// extended). An attempt is counted before its credential is checked
// (and the count undone by a success), so parallel guesses cannot
// overrun the threshold.
//
// # Tokens
//
// Access tokens are HS256 JWTs with sub, role, tenant_id, tv, iat and
// exp. Verify refuses tokens without exp or tv, for another tenant, and
// those whose tv is not the subject's current token version; the version
// is bumped by every password change or reset, token reset, and teacher
// disable/enable, which revokes the older tokens. Admin tokens carry tv
// too and are revocable. Token versions are cached in memory, so a
// verification does not touch SQLite.
package accounts
