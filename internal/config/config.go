// Package config reads settings from flags and the environment, in that order of precedence,
// with documented fallbacks (AZURE_* names), and prints the effective configuration with
// secrets redacted. Errors name the setting, its flag and what is wrong, in one line.
package config

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Setting is one configuration value: an environment name, an optional flag and fallbacks.
type Setting struct {
	Env     string
	Aliases []string
	Flag    string
	Default string
	Help    string
	Secret  bool

	value  string
	source string
}

// Set is a group of settings for one command.
type Set struct {
	settings []*Setting
	getenv   func(string) string
}

// New makes a Set; getenv nil means os.Getenv.
func New(getenv func(string) string, settings ...*Setting) *Set {
	if getenv == nil {
		getenv = os.Getenv
	}
	return &Set{settings: settings, getenv: getenv}
}

// Register adds each setting's flag to fs, with the environment names in its help.
func (s *Set) Register(fs *flag.FlagSet) {
	for _, st := range s.settings {
		if st.Flag == "" {
			continue
		}
		help := st.Help + " (env " + st.Env
		if len(st.Aliases) > 0 {
			help += ", or " + strings.Join(st.Aliases, ", ")
		}
		help += ")"
		fs.String(st.Flag, st.Default, help)
	}
}

// Resolve fills every setting: an explicitly given flag, then the environment name, then its
// aliases, then the default.
func (s *Set) Resolve(fs *flag.FlagSet) {
	given := map[string]string{}
	if fs != nil {
		fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
	}
	for _, st := range s.settings {
		if v, ok := given[st.Flag]; ok && st.Flag != "" {
			st.value, st.source = v, "flag --"+st.Flag
			continue
		}
		st.value, st.source = st.Default, "default"
		for _, name := range append([]string{st.Env}, st.Aliases...) {
			if v := s.getenv(name); v != "" {
				st.value, st.source = v, "env "+name
				break
			}
		}
	}
}

// Set overrides a value programmatically (e.g. `dev` wiring the emulator in).
func (s *Set) Set(env, value string) {
	if st := s.lookup(env); st != nil {
		st.value, st.source = value, "dev"
	}
}

func (s *Set) lookup(env string) *Setting {
	for _, st := range s.settings {
		if st.Env == env {
			return st
		}
	}
	return nil
}

// String returns a setting's value.
func (s *Set) String(env string) string {
	if st := s.lookup(env); st != nil {
		return strings.TrimSpace(st.value)
	}
	panic("config: unknown setting " + env)
}

// List splits a comma- or space-separated value.
func (s *Set) List(env string) []string {
	return strings.FieldsFunc(s.String(env), func(r rune) bool { return r == ',' || r == ' ' })
}

// Bool parses a boolean value.
func (s *Set) Bool(env string) (bool, error) {
	v := s.String(env)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, s.Errorf(env, "%q is not true or false", v)
	}
	return b, nil
}

// Duration parses a Go duration ("90s", "5m").
func (s *Set) Duration(env string) (time.Duration, error) {
	v := s.String(env)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, s.Errorf(env, "%q is not a duration such as 30s or 5m", v)
	}
	return d, nil
}

// Int64 parses an integer value.
func (s *Set) Int64(env string) (int64, error) {
	v := s.String(env)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, s.Errorf(env, "%q is not a whole number", v)
	}
	return n, nil
}

// Errorf makes an error that names the setting and its flag.
func (s *Set) Errorf(env, format string, args ...any) error {
	name := env
	if st := s.lookup(env); st != nil && st.Flag != "" {
		name += " (--" + st.Flag + ")"
	}
	return &Error{Setting: name, Msg: fmt.Sprintf(format, args...)}
}

// Error is a configuration error; the message is one line naming the setting.
type Error struct{ Setting, Msg string }

func (e *Error) Error() string { return "configuration: " + e.Setting + ": " + e.Msg }

// Describe prints the effective configuration, secrets redacted, with where each value came from.
func (s *Set) Describe(w io.Writer) {
	for _, st := range s.settings {
		v := st.value
		switch {
		case st.Secret && v != "":
			v = "<redacted>"
		case v == "":
			v = "(unset)"
		}
		fmt.Fprintf(w, "  %-28s %-44s %s\n", st.Env, v, st.source)
	}
}
