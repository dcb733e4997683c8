package render

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"
)

// part is a file encoded once for every message that carries it: its MIME
// headers (without Content-Disposition's kind) and its body in base64 lines
// of 76 characters, CRLF-terminated (RFC 2045 §6.8).
type part struct {
	path     string // as the user named it
	filename string // the name shown in mail clients
	ctype    string // media type
	charset  string // "utf-8" for a text file that is UTF-8, else ""
	cid      string // Content-ID without brackets, for images
	body     []byte // base64, CRLF lines

	inlineHead, attachedHead []byte // its header, as an image or an attachment
}

// loadPart reads the file at path and encodes it. domain is the right-hand
// side of its Content-ID.
func loadPart(path, domain string) (*part, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such file", path)
		}
		return nil, err
	}
	sum := sha256.Sum256(data)
	p := &part{
		path:     path,
		filename: filepath.Base(path),
		ctype:    contentType(path, data),
		cid:      hex.EncodeToString(sum[:10]) + "@" + domain,
	}
	if strings.HasPrefix(p.ctype, "text/") && utf8.Valid(data) {
		p.charset = "utf-8"
	}
	enc := base64.StdEncoding
	line := make([]byte, 76)
	p.body = make([]byte, 0, enc.EncodedLen(len(data))*78/76+2)
	for len(data) > 0 {
		n := min(len(data), 57)
		enc.Encode(line, data[:n])
		p.body = append(p.body, line[:enc.EncodedLen(n)]...)
		p.body = append(p.body, "\r\n"...)
		data = data[n:]
	}
	p.inlineHead, p.attachedHead = partHead(p, "inline"), partHead(p, "attachment")
	return p, nil
}

// types maps the extensions a newsletter carries to media types, so that a
// message does not depend on the machine's mime.types.
var types = map[string]string{
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".webp": "image/webp", ".svg": "image/svg+xml", ".avif": "image/avif",
	".pdf": "application/pdf", ".txt": "text/plain", ".csv": "text/csv", ".ics": "text/calendar",
	".html": "text/html", ".htm": "text/html", ".md": "text/markdown", ".json": "application/json",
	".zip": "application/zip", ".doc": "application/msword",
	".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".xls":  "application/vnd.ms-excel",
	".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	".ppt":  "application/vnd.ms-powerpoint",
	".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
	".odt":  "application/vnd.oasis.opendocument.text", ".epub": "application/epub+zip",
	".mp3": "audio/mpeg", ".mp4": "video/mp4",
}

func contentType(path string, data []byte) string {
	if t, ok := types[strings.ToLower(filepath.Ext(path))]; ok {
		return t
	}
	t := http.DetectContentType(data)
	if i := strings.IndexByte(t, ';'); i >= 0 {
		t = t[:i]
	}
	return t
}

// partCache holds every file a campaign uses, loaded and encoded once.
type partCache struct {
	domain string
	mu     sync.Mutex
	parts  map[string]*cacheEntry
}

type cacheEntry struct {
	once sync.Once
	p    *part
	err  error
}

func (c *partCache) get(path string) (*part, error) {
	c.mu.Lock()
	e, ok := c.parts[path]
	if !ok {
		e = &cacheEntry{}
		c.parts[path] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.p, e.err = loadPart(path, c.domain) })
	return e.p, e.err
}
