package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"scribe/internal/config"
	"scribe/internal/identifiers"
	"scribe/internal/store"
)

func init() {
	register("user", "add users (the first admin account is made this way)", cmdUser)
}

func cmdUser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		return errUsagef("usage: scribe user add --role clinician|admin|cso|auditor [--name 'Dr A Patel'] [--gmc N | --nmc PIN | --gphc N | --hcpc N] [--sds ID] USERNAME  (password on stdin)")
	}
	fs := newFlags("user add", stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	dataDir := fs.String("data-dir", "", "data directory (default from config)")
	role := fs.String("role", "clinician", "clinician, admin, cso or auditor")
	name := fs.String("name", "", "display name")
	gmc := fs.String("gmc", "", "GMC number (clinicians)")
	sds := fs.String("sds", "", "SDS user id (clinicians)")
	regs := map[identifiers.Body]*string{
		identifiers.NMC:  fs.String("nmc", "", "NMC PIN (nurses, midwives)"),
		identifiers.GPhC: fs.String("gphc", "", "GPhC registration number (pharmacists)"),
		identifiers.HCPC: fs.String("hcpc", "", "HCPC registration number (allied health professionals)"),
	}
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsagef("want exactly one USERNAME")
	}
	var regBody, regNumber string
	for body, v := range regs {
		if *v == "" {
			continue
		}
		if regBody != "" {
			return errUsagef("give at most one of --nmc, --gphc and --hcpc")
		}
		regBody, regNumber = string(body), identifiers.Normalize(*v)
		if err := identifiers.Check(body, regNumber); err != nil {
			return errUsagef("%v", err)
		}
	}
	if *gmc != "" {
		if err := identifiers.Check(identifiers.GMC, identifiers.Normalize(*gmc)); err != nil {
			return errUsagef("%v", err)
		}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	fmt.Fprintf(stderr, "password for %s (at least %d characters), then Enter: ", pos[0], store.MinPasswordLength)
	pw, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && pw == "" {
		return fmt.Errorf("reading the password from stdin: %w", err)
	}
	fmt.Fprintln(stderr)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	st, err := store.OpenWith(ctx, filepath.Join(cfg.DataDir, "scribe.db"), store.Options{KeyFile: cfg.KeyFile()})
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := st.CreateUser(ctx, store.NewUser{Username: pos[0], DisplayName: *name, Role: store.Role(*role),
		Password: strings.TrimRight(pw, "\r\n"), GMCNumber: identifiers.Normalize(*gmc), SDSUserID: *sds,
		RegistrationBody: regBody, RegistrationNumber: regNumber})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "user %s added with role %s\n", u.Username, u.Role)
	return nil
}
