// compose-check validates a compose file the way `docker compose config` does, without Docker:
// it loads FILE with compose-go (the library the compose plugin itself uses) with schema
// validation, interpolation from the process environment (and a .env file beside FILE, as
// compose reads one), normalisation and the consistency checks on, then prints the resolved
// project as YAML. On any error it prints the loader's message and exits 1.
//
//	go build -o compose-check . && ISALES_AUTH_KEYS=ak:sk ./compose-check ../../docker-compose.yml
//
// tests/test_compose.py builds and runs it where the compose plugin is not installed.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
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
	project, err := cli.ProjectFromOptions(context.Background(), options)
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
