package render

import (
	"container/list"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"path/filepath"
	"slices"
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
	size     int64  // the file's size

	inlineHead, attachedHead []byte // its header, as an image or an attachment
}

// newPart encodes data, the file at path. domain is the right-hand side
// of its Content-ID.
func newPart(path string, data []byte, domain string) *part {
	sum := sha256.Sum256(data)
	p := &part{
		path:     path,
		filename: filepath.Base(path),
		ctype:    contentType(path, data),
		cid:      hex.EncodeToString(sum[:10]) + "@" + domain,
		size:     int64(len(data)),
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
	return p
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

// partCache holds the files a campaign embeds and attaches, each read
// and encoded once. The campaign's own (the template's images, the
// campaign-wide attachments: a few, named in the campaign's files) stay
// for the whole campaign. Those that recipients name, which may be a
// different file in every row, are kept while recently used: at most
// maxNamedBytes of them (and maxNamedEntries), the least recently used
// dropped first, so that a long list of distinct files keeps memory flat.
type partCache struct {
	domain string
	// The campaign's files are held to trusted's rules (regular, the
	// limit), the recipients' to named's (and never a private file).
	trusted, named fileRules
	files          *recipientFiles

	mu     sync.Mutex
	parts  map[string]*cacheEntry // the campaign's, by path
	byName map[string]*cacheEntry // recipients', by name in files
	recent list.List              // of the entries in byName, most recent first
	bytes  int64                  // what the entries in recent hold

	maxBytes   int64 // maxNamedBytes, but in tests
	maxEntries int   // maxNamedEntries, but in tests
}

// What recipients' files the cache keeps, at most: past it, the least
// recently used are dropped (the one just read always stays).
const (
	maxNamedBytes   = 64 << 20
	maxNamedEntries = 1024
)

type cacheEntry struct {
	once sync.Once
	p    *part
	err  error

	name string        // in partCache.byName
	elem *list.Element // in partCache.recent; nil once dropped
	cost int64         // counted in partCache.bytes
}

func newPartCache(domain string, trusted, named fileRules, files *recipientFiles) *partCache {
	return &partCache{domain: domain, trusted: trusted, named: named, files: files,
		parts: map[string]*cacheEntry{}, byName: map[string]*cacheEntry{},
		maxBytes: maxNamedBytes, maxEntries: maxNamedEntries}
}

// get returns the campaign's file at path.
func (c *partCache) get(path string) (*part, error) {
	c.mu.Lock()
	e, ok := c.parts[path]
	if !ok {
		e = &cacheEntry{}
		c.parts[path] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		data, err := c.trusted.read(anywhere{}, path, path)
		if err != nil {
			e.err = err
			return
		}
		e.p = newPart(path, data, c.domain)
	})
	return e.p, e.err
}

// size returns the size of the recipient's file name without reading it:
// the size it had when read, if it is kept, else by stat.
func (c *partCache) size(name string) (int64, error) {
	c.mu.Lock()
	e := c.byName[name]
	var p *part
	var err error
	if e != nil {
		p, err = e.p, e.err
	}
	c.mu.Unlock()
	switch {
	case p != nil:
		return p.size, nil
	case err != nil:
		return 0, err
	}
	return c.files.stat(&c.named, name)
}

// getNamed returns the recipient's file name.
func (c *partCache) getNamed(name string) (*part, error) {
	c.mu.Lock()
	e := c.byName[name]
	if e == nil {
		e = &cacheEntry{name: name}
		c.byName[name] = e
		e.elem = c.recent.PushFront(e)
	} else {
		c.recent.MoveToFront(e.elem)
	}
	c.mu.Unlock()
	e.once.Do(func() {
		var p *part
		data, err := c.files.read(&c.named, name)
		if err == nil {
			p = newPart(c.files.path(name), data, c.domain)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		e.p, e.err = p, err
		if e.elem == nil {
			return // dropped while it was read
		}
		e.cost = int64(len(name)) + 256
		if p != nil {
			e.cost += int64(len(p.body) + len(p.inlineHead) + len(p.attachedHead))
		}
		c.bytes += e.cost
		for c.recent.Len() > 1 && (c.bytes > c.maxBytes || c.recent.Len() > c.maxEntries) {
			c.drop(c.recent.Back().Value.(*cacheEntry))
		}
	})
	return e.p, e.err
}

// drop forgets a recipient's file; c.mu is held. Messages that have it
// keep it.
func (c *partCache) drop(e *cacheEntry) {
	c.recent.Remove(e.elem)
	e.elem = nil
	delete(c.byName, e.name)
	c.bytes -= e.cost
}

// Files returns the paths of the files the renderer has read so far, the
// campaign's attachments and the images and attachments of the messages
// rendered, sorted: what a message depends on besides the templates and
// the list.
func (r *Renderer) Files() []string {
	c := r.parts
	c.mu.Lock()
	defer c.mu.Unlock()
	paths := make([]string, 0, len(c.parts)+len(c.byName))
	for p := range c.parts {
		paths = append(paths, p)
	}
	for name := range c.byName {
		paths = append(paths, c.files.path(name))
	}
	slices.Sort(paths)
	return slices.Compact(paths)
}
