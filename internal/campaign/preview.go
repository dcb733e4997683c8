package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// Preview keeps a campaign in step with its files, for batch preview. Each
// call first compares the size and modification time of every file the
// campaign was made from (the campaign file, the template, the layout, the
// list, and the attachments and images read so far) with those it last
// saw, and loads the campaign again when one changed. Messages are
// rendered by the campaign's own pipeline (Load, the merge, the renderer),
// so that a row's message is, byte for byte, the file a dry run writes for
// it. Nothing is ever sent. A Preview is safe for concurrent use.
type Preview struct {
	path  string
	now   func() time.Time
	epoch string // tells this Preview's versions from another's

	mu  sync.Mutex
	gen int
	cur *previewState
}

// PreviewRows is how many rows an Overview's page lists.
const PreviewRows = 200

// maxPreviewShapes bounds the shapes an Overview tells apart; rows of
// further shapes are only counted, so that memory stays flat for a
// template whose shape follows its values.
const maxPreviewShapes = 64

// previewCacheBytes bounds the messages a Preview keeps rendered: a row's
// page, its HTML and its images are asked for one after the other.
const previewCacheBytes = 32 << 20

// NewPreview returns a Preview of the campaign file at path. now gives the
// Date of the messages each time the campaign is loaded.
func NewPreview(path string, now func() time.Time) *Preview {
	return &Preview{path: path, now: now, epoch: strconv.FormatInt(time.Now().UnixNano(), 36)}
}

// Path is the campaign file.
func (p *Preview) Path() string { return p.path }

// Version names the state of the campaign's files: it changes whenever one
// of them changes on disk, and a page made from another version is out of
// date.
func (p *Preview) Version() string { return p.state().version }

// Shape is one of the body's shapes (see render.ShapeOf): the rows whose
// template took the same {{if}} branches.
type Shape struct {
	N       int // 1 for the list's first row's shape, then in order of first use
	Rows    int // the rows of this shape
	Example int // the first of them
	// Line is the first line of the merged body where this shape differs
	// from shape 1 (0 for shape 1 itself); Text is this shape's first line
	// of text from there, and Base shape 1's, values shown as {{…}}.
	Line       int
	Text, Base string
}

// IndexRow is one row of the list, as an Overview lists it.
type IndexRow struct {
	Row         int // in the list, 1 for the first after the header
	Email, Name string
	Shape       int   // its shape's N; 0 for none (skipped, broken, or past the shapes told apart)
	Skipped     error // why the row is left out (an invalid or repeated address), or nil
	Problem     error // why the row has no message, or nil
}

// Overview is what the index page of a preview shows: what batch check
// reports, the body's shapes, and one page of the list.
type Overview struct {
	Path    string // the campaign file
	Name    string // the campaign's name; "" when the file can't be read
	Version string
	// Problems is what batch check reports, in its order: none when the
	// campaign can be sent.
	Problems []error
	// Warnings are the rows skipped for their address, the first ones;
	// MoreWarnings counts the others.
	Warnings     []error
	MoreWarnings int
	Summary      *Summary // what check counted; nil when the list wasn't read
	Shapes       []Shape
	OtherShapes  int // rows whose shape is past the first maxPreviewShapes
	Rows         []IndexRow
	Page, Pages  int // this page, from 1, and how many there are
	Total        int // the list's rows, skipped ones too
}

// Row is one row of the list and its message.
type Row struct {
	Version     string
	Campaign    string // the campaign's name; "" when the file can't be read
	Row         int
	Email, Name string
	Preheader   string // the merged preview text, "" for none
	// Message is the message as batch send --dry-run writes it, and
	// FileName the name it gets there; nil when the row has none.
	Message  []byte
	FileName string
	Skipped  error // why the row is left out (an invalid or repeated address), or nil
	Problem  error // why there is no message: the row's problem or the campaign's
	// Prev and Next are the rows before and after it; 0 for none.
	Prev, Next int
}

// ErrNoPage is the error of a page of the index past the list's end.
var ErrNoPage = errors.New("no such page")

// NoRowError is the error of a row the list doesn't have.
type NoRowError struct {
	List string
	Row  int
	Rows int // how many the list has
}

func (e *NoRowError) Error() string {
	if e.Row < 1 {
		return fmt.Sprintf("%s has no row %d: rows are counted from 1, the first after the header", e.List, e.Row)
	}
	if e.Rows == 0 {
		return fmt.Sprintf("%s has no row %d: it has no rows", e.List, e.Row)
	}
	return fmt.Sprintf("%s has no row %d: its rows are 1 to %d", e.List, e.Row, e.Rows)
}

// previewState is the campaign as its files were at one time.
type previewState struct {
	version string
	path    string
	camp    *Campaign // nil when the campaign file can't be read
	loadErr error
	r       *render.Renderer
	rerr    error

	filesMu sync.Mutex
	files   map[string]fileStamp // what each file was when it was read
	early   map[string]fileStamp // the files of the state before, stamped before this one read them

	checkMu sync.Mutex
	check   *checkResult // made once, on first use

	cacheMu sync.Mutex
	cache   []*Row // the rows rendered last, newest first
}

// fileStamp is what a file's size and time were when read.
type fileStamp struct {
	size    int64
	mtime   int64
	missing bool
}

func stamp(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{missing: true}
	}
	return fileStamp{size: st.Size(), mtime: st.ModTime().UnixNano()}
}

// state returns the campaign as its files are now, loading it again if one
// changed.
func (p *Preview) state() *previewState {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil && !p.cur.changed() {
		return p.cur
	}
	p.gen++
	s := &previewState{version: fmt.Sprintf("%s-%d", p.epoch, p.gen), path: p.path,
		files: map[string]fileStamp{}, early: map[string]fileStamp{}}
	// The stamps of the files known so far are taken before they are
	// read, so that an edit made while they are read shows as a change
	// next time; a file named for the first time is stamped once read.
	s.early[p.path] = stamp(p.path)
	if p.cur != nil {
		for f := range p.cur.files {
			s.early[f] = stamp(f)
		}
	}
	s.camp, s.loadErr = Load(p.path)
	s.note(p.path)
	if c := s.camp; c != nil {
		for _, f := range append([]string{c.BodyPath, c.LayoutPath, c.Recipients}, c.Attachments...) {
			if f != "" {
				s.note(f)
			}
		}
		if !c.incomplete { // else Load has said why
			s.r, s.rerr = c.renderer(Options{Now: p.now()})
		}
		s.noteFiles()
	}
	p.cur = s
	return s
}

// note watches the file at path, read by now; filesMu is held, or the
// state is not shared yet.
func (s *previewState) note(path string) {
	if _, ok := s.files[path]; ok {
		return
	}
	if st, ok := s.early[path]; ok {
		s.files[path] = st
		return
	}
	s.files[path] = stamp(path)
}

// noteFiles adds the files the renderer has read since last time to those
// watched.
func (s *previewState) noteFiles() {
	if s.r == nil {
		return
	}
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	for _, f := range s.r.Files() {
		s.note(f)
	}
}

// changed reports whether a file has changed since it was read.
func (s *previewState) changed() bool {
	s.noteFiles()
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	for f, was := range s.files {
		if stamp(f) != was {
			return true
		}
	}
	return false
}

// checkResult is what a pass over the whole list found.
type checkResult struct {
	problems     []error
	warnings     []error
	moreWarnings int
	sum          *Summary
	shapes       []Shape
	byShape      map[string]int // a shape's Markdown → its N
	shapeSrc     [][]byte       // by N-1
	otherShapes  int
	rows         int // the list's last row
}

// checked checks the whole campaign, as batch check does, and counts the
// rows of each shape, once for the state.
func (s *previewState) checked(ctx context.Context) (*checkResult, error) {
	s.checkMu.Lock()
	defer s.checkMu.Unlock()
	if s.check != nil {
		return s.check, nil
	}
	res := &checkResult{byShape: map[string]int{}}
	res.problems = problemList(s.loadErr)
	if c := s.camp; c != nil {
		sum := &Summary{}
		warn := func(err error) {
			if len(res.warnings) < maxProblems {
				res.warnings = append(res.warnings, err)
			} else {
				res.moreWarnings++
			}
		}
		// Check itself, with this state's renderer: its shapes and
		// files are then known to the rows rendered later.
		probs := newProblems()
		if s.rerr != nil {
			probs.add(s.rerr)
		}
		sup, err := c.suppressionList()
		if err != nil {
			probs.add(err)
		}
		check := &pass{c: c, opts: &Options{Warn: warn}, sum: sum, r: s.r, probs: probs, sup: sup, out: &checking{}}
		err = check.run(ctx)
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		res.sum = sum
		res.problems = append(res.problems, problemList(err)...)
		if err := s.tally(ctx, res); err != nil {
			return nil, err
		}
		s.noteFiles()
	}
	s.check = res
	return res, nil
}

// tally counts the rows of each shape of the body and the list's rows.
func (s *previewState) tally(ctx context.Context, res *checkResult) error {
	c := s.camp
	var body bytes.Buffer
	_, err := s.eachRow(ctx, func(l *list, row int, rec *merge.Recipient, _ error) bool {
		res.rows = row
		if rec == nil || c.Body == nil {
			return true
		}
		src, ok := s.shape(rec, l.blank, &body)
		if !ok {
			return true
		}
		if n, ok := res.byShape[string(src)]; ok {
			res.shapes[n-1].Rows++
			return true
		}
		if len(res.shapes) >= maxPreviewShapes {
			res.otherShapes++
			return true
		}
		sh := Shape{N: len(res.shapes) + 1, Rows: 1, Example: row}
		if sh.N > 1 {
			sh.Line, sh.Text, sh.Base = difference(src, res.shapeSrc[0])
		}
		res.shapes = append(res.shapes, sh)
		res.shapeSrc = append(res.shapeSrc, src)
		res.byShape[string(src)] = sh.N
		return true
	})
	return err
}

// shape merges rec into the body and returns its shape; false when the
// template fails for it (check says why).
func (s *previewState) shape(rec *merge.Recipient, blank []string, body *bytes.Buffer) ([]byte, bool) {
	for _, name := range blank {
		rec.Fields[name] = ""
	}
	body.Reset()
	if err := s.camp.Body.Execute(body, rec.Fields); err != nil {
		return nil, false
	}
	return render.ShapeOf(body.Bytes()), true
}

// difference tells where the shape src first differs from base: the line
// (from 1) and the first line of text of each from there, values elided.
func difference(src, base []byte) (line int, text, baseText string) {
	a, b := strings.Split(string(src), "\n"), strings.Split(string(base), "\n")
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	firstText := func(lines []string) string {
		for _, l := range lines {
			if l = strings.TrimSpace(l); l != "" {
				return shorten(merge.Elide(l), 100)
			}
		}
		return ""
	}
	return i + 1, firstText(a[min(i, len(a)):]), firstText(b[min(i, len(b)):])
}

// shorten cuts s to n characters, marking the cut with "…".
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// list is what eachRow tells of the list: its columns, and the fields the
// templates name that it lacks.
type list struct {
	header, blank []string
}

// eachRow calls fn for each row of the list, in order, with its number
// and the recipient (nil for a row that is skipped or broken, err saying
// why), until fn returns false. A list that can't be read, or whose header
// can't, gives unread, saying why; one that breaks off later ends the
// rows without an error (check reports it).
func (s *previewState) eachRow(ctx context.Context, fn func(l *list, row int, rec *merge.Recipient, err error) bool) (unread, err error) {
	c := s.camp
	if c == nil || c.Recipients == "" {
		return s.campaignProblem(nil), nil
	}
	f, err := os.Open(c.Recipients)
	if err != nil {
		return fmt.Errorf("%s: %w", c.Recipients, err), nil
	}
	defer f.Close()
	rd, err := merge.NewReader(c.Recipients, f, c.Columns, c.listLimits())
	if err != nil {
		return err, nil
	}
	l := &list{header: rd.Header()}
	l.blank = c.checkFields(l.header, &problems{seen: map[string]*aggregate{}})
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		rec, err := rd.Next()
		var rowErr *merge.RowError
		switch {
		case errors.Is(err, io.EOF):
			return nil, nil
		case errors.As(err, &rowErr):
			if !fn(l, rowErr.Row, nil, err) {
				return nil, nil
			}
		case err != nil:
			return nil, nil // the list can't be read on: check says so
		default:
			if !fn(l, rec.Row, rec, nil) {
				return nil, nil
			}
		}
	}
}

// renderable reports whether the state's rows can be rendered: the
// campaign as check would let it be sent, at least up to its rows.
func (s *previewState) renderable(blank []string) bool {
	c := s.camp
	return c != nil && !c.incomplete && s.r != nil && c.Body != nil && c.Subject != nil && len(blank) == 0
}

// campaignProblem is why no row of the state can be rendered.
func (s *previewState) campaignProblem(header []string) error {
	probs := &problems{seen: map[string]*aggregate{}}
	if s.loadErr != nil {
		probs.add(s.loadErr)
	}
	if s.rerr != nil {
		probs.add(s.rerr)
	}
	if s.camp != nil {
		s.camp.checkFields(header, probs)
	}
	if err := probs.err(); err != nil {
		return err
	}
	return fmt.Errorf("%s can't be rendered: batch check %s says why", s.path, s.path)
}

// message renders rec's message as a dry run does.
func (s *previewState) message(rec *merge.Recipient, body *bytes.Buffer) (*render.Message, error) {
	m, err := s.camp.message(s.r, rec, body)
	if err != nil {
		return nil, &messageError{rec: rec, list: s.camp.Recipients, err: err}
	}
	return m, nil
}

// Overview checks the campaign as batch check does (once for each version
// of its files), counts the rows of each shape of its body, and lists page
// (from 1) of the list, PreviewRows rows a page. A page past the list's end
// is ErrNoPage. A campaign with problems still has an Overview, which
// lists them.
func (p *Preview) Overview(ctx context.Context, page int) (*Overview, error) {
	s := p.state()
	res, err := s.checked(ctx)
	if err != nil {
		return nil, err
	}
	o := &Overview{
		Path:         p.path,
		Version:      s.version,
		Problems:     res.problems,
		Warnings:     res.warnings,
		MoreWarnings: res.moreWarnings,
		Summary:      res.sum,
		Shapes:       res.shapes,
		OtherShapes:  res.otherShapes,
		Total:        res.rows,
		Page:         page,
		Pages:        max(1, (res.rows+PreviewRows-1)/PreviewRows),
	}
	if s.camp != nil {
		o.Name = s.camp.Name
	}
	if page < 1 || page > o.Pages {
		return nil, fmt.Errorf("page %d of %d: %w", page, o.Pages, ErrNoPage)
	}
	first, last := (page-1)*PreviewRows+1, page*PreviewRows
	var body bytes.Buffer
	_, err = s.eachRow(ctx, func(l *list, row int, rec *merge.Recipient, rerr error) bool {
		if row < first {
			return true
		}
		if row > last {
			return false
		}
		ir := IndexRow{Row: row}
		switch {
		case rec == nil:
			ir.Skipped, ir.Problem = rowErrors(rerr)
		default:
			ir.Email, ir.Name = rec.Email, rec.Name
			if s.camp.Body != nil {
				if src, ok := s.shape(rec, l.blank, &body); ok {
					ir.Shape = res.byShape[string(src)]
				}
			}
			if s.renderable(l.blank) {
				if _, err := s.message(rec, &body); err != nil {
					ir.Problem = err
				}
			}
		}
		o.Rows = append(o.Rows, ir)
		return true
	})
	if err != nil {
		return nil, err
	}
	s.noteFiles()
	return o, nil
}

// Row renders row n of the list (from 1) as a dry run would. A row the
// list doesn't have is a *NoRowError; a row that is skipped, or that has
// a problem (its own or the campaign's), has no Message and says why.
func (p *Preview) Row(ctx context.Context, n int) (*Row, error) {
	s := p.state()
	if r := s.cached(n); r != nil {
		return r, nil
	}
	if s.camp == nil {
		return &Row{Version: s.version, Row: n, Problem: s.loadErr}, nil
	}
	if n < 1 {
		return nil, &NoRowError{List: s.camp.Recipients, Row: n}
	}
	var found *Row
	last := 0
	var body bytes.Buffer
	unread, err := s.eachRow(ctx, func(l *list, row int, rec *merge.Recipient, rerr error) bool {
		last = row
		if found != nil { // the row after n
			found.Next = row
			return false
		}
		if row < n {
			return true
		}
		r := &Row{Version: s.version, Campaign: s.camp.Name, Row: row}
		if row > 1 {
			r.Prev = row - 1
		}
		switch {
		case rec == nil:
			r.Skipped, r.Problem = rowErrors(rerr)
		default:
			r.Email, r.Name = rec.Email, rec.Name
			if s.camp.Preheader != nil {
				r.Preheader, _ = s.camp.Preheader.Line(rec.Fields)
			}
			if !s.renderable(l.blank) {
				r.Problem = s.campaignProblem(l.header)
				break
			}
			m, err := s.message(rec, &body)
			if err != nil {
				r.Problem = err
				break
			}
			r.Message, r.FileName = m.Data, deliver.FileName(m)
		}
		found = r
		return true
	})
	switch {
	case err != nil:
		return nil, err
	case unread != nil:
		return &Row{Version: s.version, Campaign: s.camp.Name, Row: n, Problem: unread}, nil
	case found == nil:
		return nil, &NoRowError{List: s.camp.Recipients, Row: n, Rows: last}
	}
	s.noteFiles()
	s.keep(found)
	return found, nil
}

// rowErrors sorts the error of a row eachRow gives without a recipient:
// why it is skipped (an invalid or repeated address), or its problem.
func rowErrors(rerr error) (skipped, problem error) {
	if errors.Is(rerr, merge.ErrSkipped) {
		return rerr, nil
	}
	return nil, rerr
}

// cached returns row n if it was rendered lately.
func (s *previewState) cached(n int) *Row {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	for _, r := range s.cache {
		if r.Row == n {
			return r
		}
	}
	return nil
}

// keep keeps r among the rows rendered lately, dropping the oldest past
// previewCacheBytes.
func (s *previewState) keep(r *Row) {
	if len(r.Message) > previewCacheBytes {
		return
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.cache = append([]*Row{r}, s.cache...)
	total := 0
	for i, c := range s.cache {
		total += len(c.Message)
		if total > previewCacheBytes {
			s.cache = s.cache[:i]
			break
		}
	}
}
