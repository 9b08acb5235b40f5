module dockerfile-lint

go 1.26.8

require github.com/moby/buildkit v0.33.1
