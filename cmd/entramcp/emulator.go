package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/cli"
)

// emulatorFlags are the flags `emulator` and `dev` share.
type emulatorFlags struct {
	listen      string
	graphListen string
	stateDir    string
	config      string
	autoApprove bool
	verbose     bool
}

func (f *emulatorFlags) register(fs *flag.FlagSet, listenFlag string) {
	fs.StringVar(&f.listen, listenFlag, "127.0.0.1:0", "address of the emulator's identity endpoint (port 0 picks a free port); loopback only")
	fs.StringVar(&f.graphListen, "graph-listen", "127.0.0.1:0", "address of the emulator's Microsoft Graph endpoint; loopback only")
	fs.StringVar(&f.stateDir, "state-dir", ".entramcp", "directory for the CA, signing key, generated secrets and dev.json")
	fs.StringVar(&f.config, "config", "", "emulator tenant file (JSON, see docs/emulator.md); default: the built-in tenant")
	fs.BoolVar(&f.autoApprove, "auto-approve", false, "sign in the user named by login_hint without showing the sign-in page (for scripts)")
	fs.BoolVar(&f.verbose, "verbose", false, "log one line per request (never tokens, secrets or codes)")
}

func requireLoopback(flagName, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return cli.Usagef("--%s %q: %v", flagName, addr, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return cli.Usagef("--%s %q: the emulator is a test identity provider and binds to loopback only (use 127.0.0.1)", flagName, addr)
	}
	return nil
}

// start validates the flags and starts the emulator.
func (f *emulatorFlags) start(listenFlag string, stderr io.Writer) (*emulator.Emulator, error) {
	if err := requireLoopback(listenFlag, f.listen); err != nil {
		return nil, err
	}
	if err := requireLoopback("graph-listen", f.graphListen); err != nil {
		return nil, err
	}
	cfg := emulator.DefaultConfig()
	if f.config != "" {
		var err error
		if cfg, err = emulator.LoadConfig(f.config); err != nil {
			return nil, cli.Usagef("--config: %v", err)
		}
	}
	if f.autoApprove {
		cfg.Settings.AutoApprove = true
	}
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	stateDir, err := filepath.Abs(f.stateDir)
	if err != nil {
		return nil, err
	}
	return emulator.Start(emulator.Options{Config: cfg, StateDir: stateDir, Listen: f.listen, GraphListen: f.graphListen, Logger: log})
}

// writeDevJSON writes DIR/dev.json (mode 0600: it holds dev secrets) once everything is ready,
// so a script that waits for the file can use every URL in it at once.
func writeDevJSON(path string, info emulator.Info) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

const emulatorSummary = `Runs the local Entra ID + Microsoft Graph emulator over HTTPS on loopback, with a CA it
writes to STATE-DIR/ca.pem. When ready it writes STATE-DIR/dev.json with the emulator URL, CA
file, tenant id, app client ids (and dev secrets), test users, and Graph URL. SIGINT or SIGTERM
stops it cleanly. Test controls (stats, faults, key rotation, clock) are under /_emulator/;
see docs/emulator.md.`

func runEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("emulator", "entramcp emulator [--listen 127.0.0.1:PORT] [--state-dir DIR] [flags]", emulatorSummary, stderr)
	var f emulatorFlags
	f.register(fs, "listen")
	printConfig := fs.Bool("print-config", false, "print the built-in tenant as a --config file and exit")
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	if *printConfig {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(emulator.DefaultConfig())
	}
	em, err := f.start("listen", stderr)
	if err != nil {
		return err
	}
	defer em.Close()
	info := em.Info()
	path := filepath.Join(filepath.Dir(em.CAFile()), "dev.json")
	fmt.Fprintf(stdout, "entramcp emulator ready\n  identity: %s (tenant %s)\n  graph:    %s\n  CA file:  %s\n  details:  %s\n",
		info.EmulatorURL, info.TenantID, info.GraphURL, info.CAFile, path)
	if err := writeDevJSON(path, info); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "entramcp emulator stopping")
	return nil
}
