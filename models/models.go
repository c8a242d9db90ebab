// Package models only carries the model manifest into the binary. It lives beside
// manifest.json because go:embed cannot reach files above the embedding package;
// internal/models parses and uses it.
package models

import _ "embed"

// Manifest is the raw JSON of manifest.json: the models scribe knows how to pull and verify.
//
//go:embed manifest.json
var Manifest []byte
