package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The Dockerfile and compose.yaml at the repository root are checked here by
// parsing them: no Docker daemon is needed.

const repoRoot = "../.."

// instruction is one Dockerfile instruction, its continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, …
	Args string
}

// stage is one FROM and the instructions after it.
type stage struct {
	Image, Name string
	Body        []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		stages  []stage
		pending string
	)
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && pending == "") {
			continue // comments may sit between continuation lines too
		}
		if strings.HasSuffix(trimmed, "\\") {
			pending += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		full := strings.Join(strings.Fields(pending+trimmed), " ")
		pending = ""
		if full == "" {
			continue
		}
		cmd, args, _ := strings.Cut(full, " ")
		in := instruction{strings.ToUpper(cmd), args}
		if in.Cmd == "FROM" {
			f := strings.Fields(args)
			s := stage{Image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.Name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s before the first FROM", in.Cmd)
		}
		stages[len(stages)-1].Body = append(stages[len(stages)-1].Body, in)
	}
	if pending != "" {
		t.Fatal("Dockerfile ends in a continuation line")
	}
	return stages
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.Body {
		if in.Cmd == cmd {
			out = append(out, in.Args)
		}
	}
	return out
}

// envOf reads the ENV instructions of s (KEY=VALUE pairs, unquoted).
func (s stage) envOf(t *testing.T) map[string]string {
	env := map[string]string{}
	for _, args := range s.all("ENV") {
		for _, kv := range strings.Fields(args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("ENV %q: use KEY=VALUE", args)
			}
			env[k] = v
		}
	}
	return env
}

// makeRecipe returns the commands of a Makefile target, $(GO) read as go and
// @ prefixes dropped, continuation lines joined.
func makeRecipe(t *testing.T, target string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		out  []string
		in   bool
		cont string
	)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "\t") {
			if cont != "" {
				t.Fatalf("make %s: continuation into a non-recipe line", target)
			}
			in = strings.HasPrefix(line, target+":")
			continue
		}
		if !in {
			continue
		}
		l := strings.TrimSpace(line)
		if strings.HasSuffix(l, "\\") {
			cont += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		l = strings.TrimPrefix(cont+l, "@")
		cont = ""
		out = append(out, strings.Join(strings.Fields(strings.ReplaceAll(l, "$(GO)", "go")), " "))
	}
	if len(out) == 0 {
		t.Fatalf("Makefile has no target %s", target)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("want two stages (builder, runtime), got %d", len(stages))
	}
	build, rt := stages[0], stages[1]
	if build.Image != "golang:1.26" || build.Name == "" {
		t.Errorf("builder: FROM %s AS %q, want golang:1.26 AS a name", build.Image, build.Name)
	}
	if rt.Image != "debian:bookworm-slim" {
		t.Errorf("runtime: FROM %s, want debian:bookworm-slim", rt.Image)
	}

	// The builder runs make build's command.
	want := makeRecipe(t, "build")
	if len(want) != 1 {
		t.Fatalf("make build has %d commands: %q", len(want), want)
	}
	if !slices.Contains(build.all("RUN"), want[0]) {
		t.Errorf("builder RUNs %q; want one to be make build's %q", build.all("RUN"), want[0])
	}
	// The runtime takes the binary the builder made.
	out := strings.Fields(want[0])[slices.Index(strings.Fields(want[0]), "-o")+1]
	copied := false
	for _, c := range rt.all("COPY") {
		f := strings.Fields(c)
		copied = copied || (len(f) == 3 && f[0] == "--from="+build.Name && filepath.Base(f[1]) == out)
	}
	if !copied {
		t.Errorf("runtime does not COPY --from=%s the built %s: %q", build.Name, out, rt.all("COPY"))
	}

	// The apt-get packages: make deps' list, and CA certificates.
	var installed []string
	for _, r := range rt.all("RUN") {
		for _, cmd := range strings.Split(r, "&&") {
			f := strings.Fields(cmd)
			i := slices.Index(f, "apt-get")
			if i < 0 || i+1 >= len(f) || f[i+1] != "install" {
				continue
			}
			for _, a := range f[i+2:] {
				if !strings.HasPrefix(a, "-") {
					installed = append(installed, a)
				}
			}
		}
	}
	// The runtime packages of make deps are the image's; its test-only
	// ones (the browser of the console test) must stay out of it.
	var deps, testOnly []string
	for _, l := range makeRecipe(t, "deps") {
		if m := regexp.MustCompile(`runtime="([^"]+)"`).FindStringSubmatch(l); m != nil {
			deps = strings.Fields(m[1])
		}
		if m := regexp.MustCompile(`testonly="([^"]+)"`).FindStringSubmatch(l); m != nil {
			testOnly = strings.Fields(m[1])
		}
	}
	if len(deps) == 0 {
		t.Fatal(`make deps has no runtime="…" list`)
	}
	for _, p := range testOnly {
		if slices.Contains(installed, p) {
			t.Errorf("the runtime image installs %s, a test-only package of make deps", p)
		}
	}
	for _, p := range append(deps, "tesseract-ocr-chi-sim", "tesseract-ocr-eng", "poppler-utils", "fonts-noto-cjk", "ca-certificates") {
		if !slices.Contains(installed, p) {
			t.Errorf("apt-get install lacks %s (installs %q)", p, installed)
		}
	}

	// A non-root user, named and last.
	users := rt.all("USER")
	if len(users) == 0 {
		t.Fatal("runtime has no USER")
	}
	if u := strings.Split(users[len(users)-1], ":")[0]; u != "lectern" {
		t.Errorf("runtime runs as %q, want lectern (not root)", u)
	}

	env := rt.envOf(t)
	for k, v := range map[string]string{"DATA_DIR": "/data", "UPLOADS_DIR": "/uploads", "LECTERN_ADDR": "0.0.0.0:8000"} {
		if env[k] != v {
			t.Errorf("ENV %s=%q, want %q", k, env[k], v)
		}
	}
	var vols []string
	for _, v := range rt.all("VOLUME") {
		var list []string
		if err := json.Unmarshal([]byte(v), &list); err != nil {
			list = strings.Fields(v)
		}
		vols = append(vols, list...)
	}
	if !slices.Contains(vols, env["DATA_DIR"]) || !slices.Contains(vols, env["UPLOADS_DIR"]) {
		t.Errorf("VOLUME %q, want DATA_DIR and UPLOADS_DIR", vols)
	}
	if !slices.Contains(rt.all("EXPOSE"), "8000") {
		t.Errorf("EXPOSE %q, want 8000", rt.all("EXPOSE"))
	}
	execForm := func(cmd string, want []string) {
		args := rt.all(cmd)
		var got []string
		if len(args) != 1 || json.Unmarshal([]byte(args[0]), &got) != nil || !slices.Equal(got, want) {
			t.Errorf("%s %q, want the exec form %q", cmd, args, want)
		}
	}
	execForm("ENTRYPOINT", []string{"lectern"})
	execForm("CMD", []string{"serve"})

	// The image's environment starts: it listens beyond loopback, so it
	// must say what it wants of authentication.
	env["DATA_DIR"] = t.TempDir() // AUTH_REQUIRED=1 writes a secret there
	cfg, err := loadConfig(envFrom(env))
	if err != nil {
		t.Fatalf("the image's environment: %v", err)
	}
	if err := checkOpenMode(cfg.Auth, cfg.Addr); err != nil {
		t.Errorf("the image would not start: %v", err)
	}
	if !filepath.IsAbs(env["TENANT_DB_PATH"]) || !strings.HasPrefix(env["TENANT_DB_PATH"], "/data/") {
		t.Errorf("TENANT_DB_PATH=%q: want it in the data volume", env["TENANT_DB_PATH"])
	}
}

// composeFile is the part of compose.yaml the test reads.
type composeFile struct {
	Services map[string]struct {
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	svc, ok := c.Services["lectern"]
	if !ok || len(c.Services) != 1 {
		t.Fatalf("want one service lectern, got %v", c.Services)
	}
	switch b := svc.Build.(type) {
	case string:
		if b != "." {
			t.Errorf("build: %q, want .", b)
		}
	case map[string]any:
		if b["context"] != "." {
			t.Errorf("build.context: %v, want .", b["context"])
		}
	default:
		t.Errorf("build: %v, want the repository root", svc.Build)
	}
	// The image's ENTRYPOINT is lectern: the command is its arguments.
	if !slices.Equal(svc.Command, []string{"serve", "--demo"}) {
		t.Errorf("command %q, want serve --demo", svc.Command)
	}
	mounts := map[string]string{}
	for _, v := range svc.Volumes {
		f := strings.Split(v, ":")
		if len(f) < 2 {
			t.Fatalf("volume %q: want NAME:PATH", v)
		}
		if _, declared := c.Volumes[f[0]]; !declared {
			t.Errorf("volume %q: %s is not a named volume of the file", v, f[0])
		}
		mounts[f[1]] = f[0]
	}
	for _, p := range []string{"/data", "/uploads"} {
		if mounts[p] == "" {
			t.Errorf("no named volume on %s: %q", p, svc.Volumes)
		}
	}
	published := false
	for _, p := range svc.Ports {
		published = published || strings.HasSuffix(p, ":8000")
	}
	if !published {
		t.Errorf("ports %q: want the container's 8000 published", svc.Ports)
	}
	for k, want := range map[string]string{
		"TENANT_ADMIN_KEY":  "${TENANT_ADMIN_KEY",
		"AUTH_TOKEN_SECRET": "${AUTH_TOKEN_SECRET",
		"AUTH_REQUIRED":     "${AUTH_REQUIRED:-1}",
	} {
		if v, ok := svc.Environment[k]; !ok || !strings.HasPrefix(v, want) {
			t.Errorf("environment %s=%q, want it from the environment (%s…)", k, v, want)
		}
	}
}
