// compose-check validates a compose file the way `docker compose config` does, without Docker:
// it loads FILE with compose-go (the library the compose plugin itself uses) with schema
// validation, interpolation from the process environment (and a .env file beside FILE, as
// compose reads one), normalisation and the consistency checks on, then prints the resolved
// project as YAML. On any error it prints the loader's message and exits 1.
//
//	go build -o compose-check . && ISALES_AUTH_KEYS=ak:sk ./compose-check ../../docker-compose.yml
//
// tests/test_compose.py builds and runs it where the compose plugin is not installed.
//
// compose-go v1.20.2 is its last release that builds with Go 1.19, Debian bookworm's golang-go,
// which `make install` installs (deploy/scripts/install-system-packages.sh); v2 needs Go 1.21
// or newer. It loads and checks this project's file as v2.16.2 does (the same resolved project).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/cli"
)

func main() {
	if len(os.Args) != 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE")
		os.Exit(2)
	}
	if err := check(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(1)
	}
}

func check(file string) error {
	path, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	options, err := cli.NewProjectOptions(
		[]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		return err
	}
	project, err := cli.ProjectFromOptions(options)
	if err != nil {
		return err
	}
	out, err := project.MarshalYAML()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
