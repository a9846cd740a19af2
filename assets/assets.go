// Package assets embeds the stylesheet and scripts and names them by content
// hash, so they can be cached for a year.
package assets

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed css js
var files embed.FS

var hashes = map[string]string{}

func init() {
	fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		hashes[path] = hex.EncodeToString(sum[:6])
		return nil
	})
}

// Path returns the URL of an asset, e.g. Path("css/app.css") ->
// "/assets/css/app.css?v=3f2a…".
func Path(name string) string {
	return "/assets/" + name + "?v=" + hashes[name]
}

// Handler serves the embedded files under /assets/. Only files that exist
// are served; there are no directory listings.
func Handler() http.Handler {
	fsrv := http.FileServerFS(files)
	return http.StripPrefix("/assets", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if _, ok := hashes[name]; !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("v") == hashes[name] {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=300")
		}
		fsrv.ServeHTTP(w, r)
	}))
}
