package config

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"
)

func settings(env map[string]string) (*Set, *flag.FlagSet) {
	s := New(func(k string) string { return env[k] },
		&Setting{Env: "ENTRA_TENANT_ID", Aliases: []string{"AZURE_TENANT_ID"}, Flag: "tenant-id"},
		&Setting{Env: "ENTRA_CLIENT_SECRET", Flag: "client-secret", Secret: true},
		&Setting{Env: "ENTRAMCP_LEEWAY", Flag: "leeway", Default: "1m"},
		&Setting{Env: "ENTRAMCP_FLAG", Flag: "flag", Default: "false"},
	)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	s.Register(fs)
	return s, fs
}

func TestPrecedenceFlagEnvAliasDefault(t *testing.T) {
	s, fs := settings(map[string]string{"AZURE_TENANT_ID": "from-alias", "ENTRA_CLIENT_SECRET": "s3cret"})
	fs.Parse([]string{"--leeway", "90s"})
	s.Resolve(fs)
	if s.String("ENTRA_TENANT_ID") != "from-alias" {
		t.Errorf("alias not used: %q", s.String("ENTRA_TENANT_ID"))
	}
	if d, err := s.Duration("ENTRAMCP_LEEWAY"); err != nil || d != 90*time.Second {
		t.Errorf("flag did not win: %v %v", d, err)
	}
	s2, fs2 := settings(map[string]string{"AZURE_TENANT_ID": "alias", "ENTRA_TENANT_ID": "primary"})
	fs2.Parse([]string{"--tenant-id", "flag"})
	s2.Resolve(fs2)
	if s2.String("ENTRA_TENANT_ID") != "flag" {
		t.Errorf("flag should beat env: %q", s2.String("ENTRA_TENANT_ID"))
	}
	var out bytes.Buffer
	s.Describe(&out)
	if strings.Contains(out.String(), "s3cret") || !strings.Contains(out.String(), "<redacted>") || !strings.Contains(out.String(), "env AZURE_TENANT_ID") {
		t.Errorf("describe:\n%s", out.String())
	}
}

func TestTypedErrorsNameTheSetting(t *testing.T) {
	s, fs := settings(map[string]string{"ENTRAMCP_LEEWAY": "soon", "ENTRAMCP_FLAG": "maybe"})
	s.Resolve(fs)
	if _, err := s.Duration("ENTRAMCP_LEEWAY"); err == nil || !strings.Contains(err.Error(), "ENTRAMCP_LEEWAY (--leeway)") {
		t.Errorf("duration error: %v", err)
	}
	if _, err := s.Bool("ENTRAMCP_FLAG"); err == nil || !strings.Contains(err.Error(), "ENTRAMCP_FLAG (--flag)") {
		t.Errorf("bool error: %v", err)
	}
}
