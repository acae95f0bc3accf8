package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The chart is drawn at a small logical size with the 7×13 bitmap font and
// scaled up 2× nearest-neighbour, so the text stays crisp.
const (
	chartW     = 600
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
	if len(r.Downloads)+len(r.Uploads) > 0 {
		panels = append(panels, throughputPanel(r))
	}
	if len(r.Small) > 0 {
		panels = append(panels, smallPanel(r))
	}
	if r.RSS != nil {
		panels = append(panels, rssPanel(r.RSS))
	}
	height := 36
	for _, p := range panels {
		height += panelHeight(p)
	}
	img := image.NewRGBA(image.Rect(0, 0, chartW, height))
	fill(img, img.Bounds(), colBG)
	text(img, 8, 16, "fhir-binary-gateway vs direct S3 - "+r.Machine.NProc+" shared cores, "+r.Machine.Started.UTC().Format("2006-01-02"), colText)
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

func throughputPanel(r *results) panel {
	p := panel{
		title:   "Throughput as % of the direct S3 path (red tick = target)",
		legend:  []bar{{col: colStream, label: "gateway stream"}, {col: colRedirect, label: "redirect, followed"}, {col: colUpload, label: "gateway upload"}},
		refLine: 1,
		tickFmt: func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) },
	}
	top := 1.2
	for _, d := range r.Downloads {
		rs, rr := Ratio(d.Stream.MiBps(), d.Direct.MiBps()), Ratio(d.Redirect.MiBps(), d.Direct.MiBps())
		redirTarget := 0.0
		if d.Size >= targetRedirectMin {
			redirTarget = targetRedirect
		}
		p.groups = append(p.groups, group{
			label: fmt.Sprintf("GET %s x%d", SizeName(d.Size), d.Clients),
			bars: []bar{
				{value: rs, target: targetStream, col: colStream, label: pct(rs), missed: rs < targetStream},
				{value: rr, target: redirTarget, col: colRedirect, label: pct(rr), missed: redirTarget > 0 && rr < redirTarget},
			},
		})
		top = max(top, rs, rr)
	}
	for _, u := range r.Uploads {
		ru := Ratio(u.Gateway.MiBps(), u.Direct.MiBps())
		p.groups = append(p.groups, group{
			label: "POST " + SizeName(u.Size),
			bars:  []bar{{value: ru, target: targetUpload, col: colUpload, label: pct(ru), missed: ru < targetUpload}},
		})
		top = max(top, ru)
	}
	p.max = math.Ceil(top*5) / 5
	for v := 0.0; v <= p.max+1e-9; v += 0.2 {
		p.ticks = append(p.ticks, v)
	}
	return p
}

func smallPanel(r *results) panel {
	p := panel{
		title:   "Small requests per second (red tick = 10,000/s target, 64 clients)",
		legend:  []bar{{col: colRedis, label: "Redis GET floor"}, {col: colJSON, label: "GET JSON _summary"}, {col: colRedirect, label: "307 redirect"}},
		tickFmt: func(v float64) string { return fmt.Sprintf("%.0fk", v/1000) },
	}
	top := targetRedirects
	for _, s := range r.Small {
		t := 0.0
		missed := false
		label := fmt.Sprintf("%.0f p99 %sms", s.Redirect.PerSec(), Millis(s.Redirect.P99))
		if s.Clients == 64 {
			t = targetRedirects
			missed = s.Redirect.PerSec() < targetRedirects || s.Redirect.P99 >= targetRedirectP99
		}
		p.groups = append(p.groups, group{
			label: plural(s.Clients, "client"),
			bars: []bar{
				{value: s.Redis.PerSec(), col: colRedis, label: fmt.Sprintf("%.0f", s.Redis.PerSec())},
				{value: s.JSON.PerSec(), col: colJSON, label: fmt.Sprintf("%.0f", s.JSON.PerSec())},
				{value: s.Redirect.PerSec(), target: t, col: colRedirect, label: label, missed: missed},
			},
		})
		top = max(top, s.Redis.PerSec(), s.JSON.PerSec(), s.Redirect.PerSec())
	}
	step := niceStep(top / 5)
	p.max = math.Ceil(top/step) * step
	for v := 0.0; v <= p.max+1e-9; v += step {
		p.ticks = append(p.ticks, v)
	}
	return p
}

func rssPanel(s *rssRow) panel {
	peak := float64(s.PeakKiB) / 1024
	p := panel{
		title:   fmt.Sprintf("Gateway peak RSS (VmHWM), %d clients x %s streamed (red tick = target)", s.Clients, SizeName(s.Size)),
		tickFmt: func(v float64) string { return fmt.Sprintf("%.0f", v) },
	}
	p.groups = []group{{label: "peak VmHWM", bars: []bar{{value: peak, target: float64(targetRSS / mib), col: colStream,
		label: fmt.Sprintf("%.1f MiB", peak), missed: s.PeakKiB*kib >= targetRSS}}}}
	top := max(peak, float64(targetRSS/mib)) * 1.1
	step := niceStep(top / 5)
	p.max = math.Ceil(top/step) * step
	for v := 0.0; v <= p.max+1e-9; v += step {
		p.ticks = append(p.ticks, v)
	}
	return p
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
