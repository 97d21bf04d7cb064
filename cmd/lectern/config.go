package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/bodydeadline"
	"github.com/lectern/lectern/internal/cors"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/modelconfig"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/ratelimit"
	"github.com/lectern/lectern/internal/server"
	"github.com/lectern/lectern/internal/tenantapp"
)

// config is everything the server reads from its environment.
type config struct {
	Addr     string
	LogLevel slog.Level
	// LogFormat is LOG_FORMAT: text (default) or json.
	LogFormat string
	Auth      authSettings
	Server    server.Config
}

// loadConfig reads the environment. Every error names the variable at fault.
func loadConfig(getenv func(string) string) (config, error) {
	env := envReader{getenv: getenv}
	c := config{
		Addr: env.str("LECTERN_ADDR", "127.0.0.1:8000"),
		Server: server.Config{
			DataDir:      env.dir("DATA_DIR", "./data"),
			UploadsDir:   env.dir("UPLOADS_DIR", "./uploads"),
			TenantDBPath: env.dir("TENANT_DB_PATH", "./data/_system/tenants.sqlite3"),
			AdminKey:     getenv("TENANT_ADMIN_KEY"),
			// TENANT_DATA_BASE_DIR is the predecessor's (HEAD) name for it.
			DataRoot:         env.dir("TENANT_DATA_ROOT", env.dir("TENANT_DATA_BASE_DIR", "")),
			ChatWorkers:      env.positive("CHAT_WORKER_POOL_SIZE", 4),
			UploadMaxBytes:   int64(env.positive("UPLOAD_MAX_MB", 64)) << 20,
			UploadMaxFiles:   env.positive("UPLOAD_MAX_FILES", 32),
			DefaultTeacherID: env.str("DEFAULT_TEACHER_ID", "teacher"),
			ProfileQueueMax:  env.positive("PROFILE_UPDATE_QUEUE_MAX", 500),
			JobQueueMax:      env.positive("JOB_QUEUE_MAX", 100),
			SheetParseMax:    env.positive("SHEET_PARSE_MAX_CONCURRENCY", 2),
			TenantIdleUnload: env.idle("TENANT_IDLE_UNLOAD", 30*time.Minute),
			HealthStrict:     env.flag("HEALTH_STRICT", false),
			CORS:             cors.Parse(getenv("CORS_ORIGINS")),
			Body: bodydeadline.Limits{
				Idle:    time.Duration(env.positive("BODY_IDLE_TIMEOUT_SEC", 10)) * time.Second,
				MinRate: int64(env.positive("BODY_MIN_RATE_KB", 16)) << 10,
			},
			Chat: tenantapp.ChatSettings{
				LaneMaxQueue:  env.positive("CHAT_LANE_MAX_QUEUE", 6),
				Debounce:      env.debounce("CHAT_LANE_DEBOUNCE_MS", 500),
				MaxToolRounds: env.positive("CHAT_MAX_TOOL_ROUNDS", 5),
				MaxToolCalls:  env.positive("CHAT_MAX_TOOL_CALLS", 12),
			},
			Grading: tenantapp.GradingSettings{
				ReviewThreshold: env.fraction("GRADE_COUNT_CONF_THRESHOLD", 0.6),
				RequireReview:   env.flag("PROFILE_UPDATE_REQUIRE_REVIEW", false),
			},
		},
	}
	if a, err := loadAuth(getenv, c.Server.DataDir); err != nil {
		env.errs = append(env.errs, err)
	} else {
		c.Auth = a
		c.Server.Auth = tenantapp.AuthSettings{Enabled: a.Enabled, Secret: a.Secret, TTL: a.TTL,
			Admin: env.str("ADMIN_USERNAME", "admin"), AdminPassword: getenv("ADMIN_PASSWORD"),
			LockThreshold:  env.positive("AUTH_LOGIN_LOCK_THRESHOLD", 5),
			LockDuration:   time.Duration(env.positive("AUTH_LOGIN_LOCK_MINUTES", 15)) * time.Minute,
			PasswordMinLen: env.positive("AUTH_PASSWORD_MIN_LEN", 8)}
	}
	// An empty variable is an unset one here: RATE_LIMIT_RPM=0 disables.
	general, login, err := ratelimit.ConfigFromEnv(func(k string) (string, bool) { v := getenv(k); return v, v != "" })
	if err != nil {
		env.errs = append(env.errs, err)
	}
	if general.Burst == 0 {
		// As the predecessor's 60 s window: up to a minute's requests at
		// once, then RPM/60 a second.
		general.Burst = general.RPM
	}
	c.Server.RateLimit, c.Server.LoginRateLimit = general, login
	if lc, err := llm.ConfigFromEnv(getenv); err != nil {
		env.errs = append(env.errs, err)
	} else {
		c.Server.LLM = lc
	}
	if oc, err := ocr.LLMSettingsFromEnv(getenv, c.Server.LLM); err != nil {
		env.errs = append(env.errs, err)
	} else {
		c.Server.OCR = oc
	}
	c.Server.PDFFont = env.str("ASSIGNMENT_PDF_FONT", "")
	c.Server.MCPAPIKey = getenv("MCP_API_KEY")
	c.Server.MetricsToken = getenv("METRICS_TOKEN")
	switch c.LogFormat = env.str("LOG_FORMAT", "text"); c.LogFormat {
	case "text", "json":
	default:
		env.fail("LOG_FORMAT", fmt.Sprintf("must be text or json, got %q", c.LogFormat))
	}
	c.Server.MemoryAutoApply = env.flag("TEACHER_MEMORY_AUTO_APPLY_ENABLED", false)
	if key, err := modelconfig.LoadMasterKey(getenv); err != nil {
		env.errs = append(env.errs, err)
	} else {
		c.Server.Models.MasterKey = key
	}
	c.Server.Models.LegacyMasterKey = getenv(modelconfig.EnvLegacyMasterKey)
	c.Server.Models.AllowPrivate = modelconfig.AllowPrivateFromEnv(getenv)
	switch strings.ToLower(env.str("APP_ENV", env.str("ENV", ""))) {
	case "prod", "production":
		c.Server.Models.RequireHTTPS = true
	}
	if v := env.str("LOG_LEVEL", "info"); c.LogLevel.UnmarshalText([]byte(v)) != nil {
		env.fail("LOG_LEVEL", fmt.Sprintf("must be debug, info, warn or error, got %q", v))
	}
	total := env.positive("LLM_MAX_CONCURRENCY", 8)
	c.Server.Global = limits.Config{
		LLMTotal:   total,
		LLMStudent: env.positive("LLM_MAX_CONCURRENCY_STUDENT", total),
		LLMTeacher: env.positive("LLM_MAX_CONCURRENCY_TEACHER", total),
		OCR:        env.positive("OCR_MAX_CONCURRENCY", 4),
	}
	if err := checkAddr(c.Addr); err != nil {
		env.fail("LECTERN_ADDR", err.Error())
	}
	return c, errors.Join(env.errs...)
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("bad host %q", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// envReader collects every bad variable, so one start reports them all.
type envReader struct {
	getenv func(string) string
	errs   []error
}

func (e *envReader) fail(name, msg string) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s", name, msg))
}

func (e *envReader) str(name, def string) string {
	v := strings.TrimSpace(e.getenv(name))
	if v == "" {
		return def
	}
	if strings.ContainsRune(v, 0) {
		e.fail(name, "contains a NUL byte")
	}
	return v
}

// dir reads a path and makes it absolute ("" stays "").
func (e *envReader) dir(name, def string) string {
	v := e.str(name, def)
	if v == "" {
		return ""
	}
	abs, err := filepath.Abs(v)
	if err != nil {
		e.fail(name, err.Error())
		return ""
	}
	return abs
}

// debounce reads milliseconds; 0 disables the debounce (a negative
// duration for the chat service).
func (e *envReader) debounce(name string, def int) time.Duration {
	v := strings.TrimSpace(e.getenv(name))
	if v == "" {
		return time.Duration(def) * time.Millisecond
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		e.fail(name, fmt.Sprintf("must be a whole number of milliseconds (0 disables), got %q", v))
		return time.Duration(def) * time.Millisecond
	}
	if n == 0 {
		return -1
	}
	return time.Duration(n) * time.Millisecond
}

// idle reads a duration (30m) or a number of minutes; 0 disables.
func (e *envReader) idle(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(e.getenv(name))
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		e.fail(name, fmt.Sprintf("must be a duration such as 30m or a number of minutes (0 disables), got %q", v))
		return def
	}
	return d
}

// fraction reads a number in (0, 1].
func (e *envReader) fraction(name string, def float64) float64 {
	v := strings.TrimSpace(e.getenv(name))
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0 && f <= 1) {
		e.fail(name, fmt.Sprintf("must be a number in (0, 1], got %q", v))
		return def
	}
	return f
}

// flag reads 1/true/yes/on (true) or 0/false/no/off (false).
func (e *envReader) flag(name string, def bool) bool {
	switch v := strings.ToLower(strings.TrimSpace(e.getenv(name))); v {
	case "":
		return def
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	default:
		e.fail(name, fmt.Sprintf("must be 1/true/yes/on or 0/false/no/off, got %q", v))
		return def
	}
}

func (e *envReader) positive(name string, def int) int {
	v := strings.TrimSpace(e.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		e.fail(name, fmt.Sprintf("must be a positive integer, got %q", v))
		return def
	}
	return n
}
