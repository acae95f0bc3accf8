package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The chart is drawn at a small logical size with the 7×13 bitmap font and
// scaled up 2× nearest-neighbour, so the text stays crisp.
const (
	chartW     = 720
	labelW     = 118 // left column for row labels
	valueW     = 78  // right margin for value labels
	barH       = 11
	barGap     = 2
	groupGap   = 9
	lineH      = 14
	chartScale = 2
)

var (
	colBG       = color.RGBA{255, 255, 255, 255}
	colText     = color.RGBA{30, 30, 30, 255}
	colGrid     = color.RGBA{225, 225, 225, 255}
	colAxis     = color.RGBA{90, 90, 90, 255}
	colMiss     = color.RGBA{200, 30, 30, 255}
	colTarget   = color.RGBA{200, 30, 30, 255}
	colStream   = color.RGBA{44, 110, 190, 255}
	colRedirect = color.RGBA{240, 140, 30, 255}
	colUpload   = color.RGBA{50, 160, 80, 255}
	colRedis    = color.RGBA{150, 150, 150, 255}
	colJSON     = color.RGBA{140, 90, 190, 255}
	colRegRedir = color.RGBA{200, 170, 230, 255}
)

// bar is one bar of a group; target 0 means none.
type bar struct {
	value, target float64
	col           color.Color
	label         string // value label drawn after the bar
	missed        bool
}

type group struct {
	label string
	bars  []bar
}

type panel struct {
	title   string
	legend  []bar // col + label
	groups  []group
	max     float64 // axis end
	ticks   []float64
	tickFmt func(float64) string
	refLine float64 // solid reference line (e.g. 100% = direct); 0: none
}

func renderChart(r *results) ([]byte, error) {
	var panels []panel
	for _, be := range r.Backends {
		if len(be.Downloads)+len(be.Uploads) > 0 {
			panels = append(panels, throughputPanel(be))
		}
	}
	if p, ok := redirectPanel(r); ok {
		panels = append(panels, p)
	}
	if p, ok := rssPanel(r); ok {
		panels = append(panels, p)
	}
	height := 36
	for _, p := range panels {
		height += panelHeight(p)
	}
	img := image.NewRGBA(image.Rect(0, 0, chartW, height))
	fill(img, img.Bounds(), colBG)
	title := fmt.Sprintf("fhir-binary-gateway and peers, one run - %s cores, %s", r.Machine.NProc, r.Machine.Started.UTC().Format("2006-01-02"))
	if r.Quick {
		title += " (SMOKE RUN)"
	}
	text(img, 8, 16, title, colText)
	y := 30
	for _, p := range panels {
		drawPanel(img, p, y)
		y += panelHeight(p)
	}
	big := image.NewRGBA(image.Rect(0, 0, chartW*chartScale, height*chartScale))
	xdraw.NearestNeighbor.Scale(big, big.Bounds(), img, img.Bounds(), xdraw.Src, nil)
	var buf bytes.Buffer
	if err := png.Encode(&buf, big); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var pathColour = map[string]color.Color{
	pGateway:       colStream,
	pDirectUnsign:  colRedis,
	pStream:        colStream,
	pRedirect:      colRedirect,
	pTusd:          colUpload,
	pRegistry:      colJSON,
	pRegistryRedir: colRegRedir,
	pGateway307:    colRedirect,
	pRegistry307:   colJSON,
}

func throughputPanel(be *backendResult) panel {
	p := panel{
		title: be.Name + ": throughput as x of the direct S3 path (red tick = target)",
		legend: []bar{{col: colStream, label: "gateway"}, {col: colRedirect, label: "gw redirect"}, {col: colJSON, label: "registry"},
			{col: colRegRedir, label: "reg. redirect"}, {col: colUpload, label: "tusd"}, {col: colRedis, label: "direct unsigned"}},
		refLine: 1,
		tickFmt: func(v float64) string { return fmt.Sprintf("%.1fx", v) },
	}
	top := 1.2
	for _, u := range be.Uploads {
		d := u.Paths[pDirect].MiBps()
		g := group{label: "PUT " + SizeName(u.Size)}
		for _, name := range []string{pGateway, pDirectUnsign, pTusd, pRegistry} {
			v := Ratio(u.Paths[name].MiBps(), d)
			b := bar{value: v, col: pathColour[name], label: timesASCII(v)}
			if name == pGateway {
				b.target = targetUploadDirect
				b.missed = v < targetUploadDirect || Ratio(u.Paths[pGateway].MiBps(), u.Paths[pTusd].MiBps()) < targetUploadTusd
			}
			g.bars = append(g.bars, b)
			top = max(top, v)
		}
		p.groups = append(p.groups, g)
	}
	for _, dl := range be.Downloads {
		d := dl.Paths[pDirect].MiBps()
		g := group{label: fmt.Sprintf("GET %s x%d", SizeName(dl.Size), dl.Clients)}
		for _, name := range downloadPaths[1:] {
			v := Ratio(dl.Paths[name].MiBps(), d)
			b := bar{value: v, col: pathColour[name], label: timesASCII(v)}
			if name == pStream {
				if t := downloadTarget(be.Name, dl.Size, dl.Clients); t > 0 {
					b.target, b.missed = t, v < t
				}
			}
			g.bars = append(g.bars, b)
			top = max(top, v)
		}
		p.groups = append(p.groups, g)
	}
	p.max = math.Ceil(top*5) / 5
	for v := 0.0; v <= p.max+1e-9; v += 0.2 {
		p.ticks = append(p.ticks, v)
	}
	return p
}

func redirectPanel(r *results) (panel, bool) {
	p := panel{
		title:   "307 redirects per second, not followed (red tick = 4x the registry, 64 connections)",
		legend:  []bar{{col: colRedirect, label: "gateway 307"}, {col: colJSON, label: "registry 307"}},
		tickFmt: func(v float64) string { return fmt.Sprintf("%.0fk", v/1000) },
	}
	top := 0.0
	for _, be := range r.Backends {
		for _, s := range be.Small {
			g, reg := s.Paths[pGateway307], s.Paths[pRegistry307]
			gb := bar{value: g.PerSec(), col: colRedirect, label: fmt.Sprintf("%.0f p99 %sms", g.PerSec(), Millis(g.P99()))}
			if s.Clients == 64 {
				gb.target = targetRedirectsX * reg.PerSec()
				gb.missed = g.PerSec() < gb.target || g.P99() >= targetRedirectP99
			}
			p.groups = append(p.groups, group{
				label: fmt.Sprintf("%s x%d", shortName(be.Name), s.Clients),
				bars:  []bar{gb, {value: reg.PerSec(), col: colJSON, label: fmt.Sprintf("%.0f p99 %sms", reg.PerSec(), Millis(reg.P99()))}},
			})
			top = max(top, g.PerSec(), reg.PerSec(), gb.target)
		}
	}
	if len(p.groups) == 0 {
		return p, false
	}
	step := niceStep(top / 5)
	p.max = math.Ceil(top*1.25/step) * step
	for v := 0.0; v <= p.max+1e-9; v += step {
		p.ticks = append(p.ticks, v)
	}
	return p, true
}

func shortName(backend string) string {
	if backend == "versitygw" {
		return "vgw"
	}
	return strings.ToLower(backend)
}

func rssPanel(r *results) (panel, bool) {
	p := panel{
		title:   "Peak RSS (VmHWM, MiB) of a fresh server while N clients stream one object (red tick = target)",
		legend:  []bar{{col: colStream, label: "gateway"}, {col: colJSON, label: "registry"}, {col: colUpload, label: "tusd"}},
		tickFmt: func(v float64) string { return fmt.Sprintf("%.0f", v) },
	}
	top := float64(targetRSS / mib)
	for _, be := range r.Backends {
		if len(be.RSS) == 0 {
			continue
		}
		g := group{label: fmt.Sprintf("%s %dx%s", shortName(be.Name), be.RSS[0].Clients, SizeName(be.RSS[0].Size))}
		for _, row := range be.RSS {
			v := float64(row.PeakKiB) / 1024
			b := bar{value: v, col: pathColour[row.Server], label: fmt.Sprintf("%.1f MiB", v)}
			if row.Server == pStream {
				b.col = colStream
				b.target = float64(targetRSS / mib)
				b.missed = row.PeakKiB*kib >= targetRSS
			} else if row.Server == pTusd {
				b.col = colUpload
			}
			g.bars = append(g.bars, b)
			top = max(top, v)
		}
		p.groups = append(p.groups, g)
	}
	if len(p.groups) == 0 {
		return p, false
	}
	step := niceStep(top * 1.1 / 5)
	p.max = math.Ceil(top*1.1/step) * step
	for v := 0.0; v <= p.max+1e-9; v += step {
		p.ticks = append(p.ticks, v)
	}
	return p, true
}

func panelHeight(p panel) int {
	h := lineH*2 + 6 // title, legend
	if len(p.legend) == 0 {
		h = lineH + 6
	}
	for _, g := range p.groups {
		h += len(g.bars)*(barH+barGap) + groupGap
	}
	return h + lineH + 16 // axis labels, spacing
}

func drawPanel(img *image.RGBA, p panel, y int) {
	x0, x1 := labelW, chartW-valueW
	scale := func(v float64) int { return x0 + int(math.Round(float64(x1-x0)*min(v, p.max)/p.max)) }
	text(img, 8, y+11, p.title, colText)
	y += lineH + 2
	if len(p.legend) > 0 {
		lx := x0
		for _, l := range p.legend {
			fill(img, image.Rect(lx, y+2, lx+10, y+11), l.col)
			text(img, lx+14, y+11, l.label, colText)
			lx += 14 + 7*len(l.label) + 16
		}
		y += lineH
	}
	y += 4
	top := y
	bottom := y
	for _, g := range p.groups {
		bottom += len(g.bars)*(barH+barGap) + groupGap
	}
	for _, t := range p.ticks {
		vline(img, scale(t), top, bottom-groupGap/2, colGrid, false)
	}
	if p.refLine > 0 {
		vline(img, scale(p.refLine), top, bottom-groupGap/2, colAxis, false)
	}
	for _, g := range p.groups {
		gh := len(g.bars)*(barH+barGap) - barGap
		text(img, 8, y+gh/2+5, g.label, colText)
		for _, b := range g.bars {
			fill(img, image.Rect(x0, y, scale(b.value), y+barH), b.col)
			if b.target > 0 {
				tx := scale(b.target)
				fill(img, image.Rect(tx-1, y-1, tx+1, y+barH+1), colTarget)
			}
			c := colText
			label := b.label
			if b.missed {
				c, label = colMiss, label+" MISS"
			}
			lx := max(scale(b.value), scale(b.target)) + 4
			text(img, lx, y+barH-1, label, c)
			y += barH + barGap
		}
		y += groupGap
	}
	vline(img, x0, top, bottom-groupGap/2, colAxis, false)
	for _, t := range p.ticks {
		s := p.tickFmt(t)
		text(img, scale(t)-7*len(s)/2, bottom+8, s, colAxis)
	}
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

func pct(v float64) string { return Percent(v) }

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	xdraw.Draw(img, r.Intersect(img.Bounds()), &image.Uniform{c}, image.Point{}, xdraw.Src)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color, dashed bool) {
	for y := y0; y < y1; y++ {
		if !dashed || (y/3)%2 == 0 {
			img.Set(x, y, c)
		}
	}
}

// text draws s with its baseline at y.
func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: &image.Uniform{c}, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func plural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// timesASCII is Times with an ASCII x: the bitmap font has no ×.
func timesASCII(v float64) string { return strings.ReplaceAll(Times(v), "×", "x") }
