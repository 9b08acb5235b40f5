// Command dockerfile-lint runs BuildKit's Dockerfile checks (the rules behind
// `docker build --check`) without a Docker engine or registry access.
//
// Usage: dockerfile-lint [-base-env NAME=VALUE]... Dockerfile
//
// Rules are configured the way BuildKit does it, by the file's `# check=` directive
// (e.g. `# check=error=true;experimental=all`).
//
// Base images are not pulled: an offline resolver answers every FROM with an empty
// linux image config, so rules that need a base image's real config (InvalidBaseImagePlatform,
// base-image variables seen by UndefinedVar) only see what -base-env declares.
// Exit status: 0 clean, 1 warnings or a parse/build error, 2 usage or I/O error.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	digest "github.com/opencontainers/go-digest"
)

type envFlags []string

func (e *envFlags) String() string     { return strings.Join(*e, ",") }
func (e *envFlags) Set(v string) error { *e = append(*e, v); return nil }

// offlineResolver stands in for a registry: every base image is an empty linux image
// whose environment is the given list.
type offlineResolver struct{ env []string }

func (r offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		// one layer, so the stage is not treated as `scratch`
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest.FromString(ref).String()}},
		"config": map[string]any{"Env": r.env},
	}
	dt, err := json.Marshal(cfg)
	return ref, "", dt, err
}

func main() {
	var baseEnv envFlags
	flag.Var(&baseEnv, "base-env", "NAME=VALUE the base images define (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile-lint [-base-env NAME=VALUE]... Dockerfile")
		os.Exit(2)
	}
	path := flag.Arg(0)
	dt, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	ctx := context.Background()
	// The lint results carry their source as an LLB definition; an empty one is enough here.
	src := llb.Scratch()
	def, err := src.Marshal(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sourceMap := llb.NewSourceMap(&src, path, "Dockerfile", dt)
	sourceMap.Definition = def

	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, baseEnv...)
	opt := dockerfile2llb.ConvertOpt{
		SourceMap:    sourceMap,
		MetaResolver: offlineResolver{env: env},
	}

	results, err := dockerfile2llb.DockerfileLint(ctx, dt, opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(report(path, results))
}

func report(path string, results *lint.LintResults) int {
	status := 0
	for _, w := range results.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		fmt.Printf("%s:%d %s: %s (%s)\n", path, line, w.RuleName, w.Detail, w.URL)
		status = 1
	}
	if results.Error != nil {
		line := 0
		if len(results.Error.Location.Ranges) > 0 {
			line = int(results.Error.Location.Ranges[0].Start.Line)
		}
		fmt.Printf("%s:%d error: %s\n", path, line, results.Error.Message)
		status = 1
	}
	if status == 0 {
		fmt.Printf("%s: no BuildKit check warnings\n", path)
	}
	return status
}
