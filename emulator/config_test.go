package emulator_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/entramcp/entramcp/emulator"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(v any) string {
		p := filepath.Join(dir, "tenant.json")
		b, _ := json.Marshal(v)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The built-in tenant round-trips through the file format.
	cfg, err := emulator.LoadConfig(write(emulator.DefaultConfig()))
	if err != nil {
		t.Fatalf("default config as a file: %v", err)
	}
	if len(cfg.Users) != 2 || cfg.Users[0].Name != "alice" || len(cfg.ServiceMessages) == 0 {
		t.Fatalf("loaded config: %+v", cfg)
	}
	bad := map[string]func(*emulator.Config){
		"tenant id is not a GUID": func(c *emulator.Config) { c.Tenant.ID = "contoso" },
		"duplicate appId":         func(c *emulator.Config) { c.Applications = append(c.Applications, c.Applications[0]) },
		"unknown group member":    func(c *emulator.Config) { c.Groups[0].Members = []string{"mallory"} },
		"unknown directory role":  func(c *emulator.Config) { c.Users[0].DirectoryRoles = []string{"Supreme Leader"} },
		"consent for unknown scope": func(c *emulator.Config) {
			c.Consents = append(c.Consents, emulator.ConsentConfig{Client: emulator.DefaultClientAppID, Resource: emulator.GraphAppID, Scope: "Everything.All"})
		},
		"role not defined": func(c *emulator.Config) {
			c.RoleAssignments = append(c.RoleAssignments, emulator.RoleAssignmentConfig{Resource: emulator.DefaultServerAppID, Roles: []string{"Nope"}, User: "bob"})
		},
		"policy without mfa": func(c *emulator.Config) {
			c.Policies = []*emulator.Policy{{DisplayName: "p", Users: []string{"*"}, Resources: []string{"*"}}}
		},
	}
	for name, mutate := range bad {
		c := emulator.DefaultConfig()
		mutate(c)
		if _, err := emulator.LoadConfig(write(c)); err == nil {
			t.Errorf("%s: config accepted", name)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "typo.json"), []byte(`{"tenant":{"id":"x"},"userz":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := emulator.LoadConfig(filepath.Join(dir, "typo.json")); err == nil || !strings.Contains(err.Error(), "userz") {
		t.Errorf("unknown field: err = %v, want it named", err)
	}
}

func TestStateDirKeepsKeysAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	em1, err := emulator.Start(emulator.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	kid, secret := em1.SigningKeyIDs()[0], em1.Info().Apps.Server.ClientSecret
	ca, _ := os.ReadFile(em1.CAFile())
	em1.Close()
	em2, err := emulator.Start(emulator.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer em2.Close()
	ca2, _ := os.ReadFile(em2.CAFile())
	if em2.SigningKeyIDs()[0] != kid || em2.Info().Apps.Server.ClientSecret != secret || string(ca) != string(ca2) {
		t.Fatal("a restart with the same state dir changed the signing key, the dev secret or the CA")
	}
	for _, f := range []string{"ca-key.pem", "signing-key.pem", "secrets.json"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", f, err, st.Mode().Perm())
		}
	}
}
