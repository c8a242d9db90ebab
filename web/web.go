// Package web holds the review page: static HTML, CSS and JavaScript embedded in the
// binary, with no CDN or external fonts, so it works on a practice network with no
// internet.
package web

import "embed"

// Static is the page's files under "static/".
//
//go:embed static
var Static embed.FS
