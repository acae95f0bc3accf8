package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/cmd/fhir-binary-gateway/uploadclient"
)

// Issue 11's speed figure: a file uploaded through an upload session (parts
// PUT straight to S3 on presigned UploadPart URLs of one multipart upload,
// then the gateway's complete: CompleteMultipartUpload and one read-back
// to hash the object) against the SDK's multipart upload of the same file,
// with the same part size and parts in flight.
const (
	targetSession   = 0.95 // session ≥ 95% of the SDK's direct multipart
	sessionInFlight = 4
)

// Path names of the session rows.
const (
	pSessionDirect = "direct multipart"
	pSession       = "gateway session"
)

var sessionPaths = []string{pSessionDirect, pSession}

type sessionRow struct {
	Size, PartSize int64
	InFlight       int
	Paths          map[string]*transferResult
	Complete       time.Duration // the gateway's complete (POST <upload>), all repetitions
	CompleteCPU    time.Duration // the gateway's CPU over those completes
	SessionCPU     time.Duration // the gateway's CPU over whole sessions (open, parts, complete)
	// HashPerGiB is this machine's SHA-256 of one GiB (crypto/sha256, from
	// memory, the best of a few runs): no complete can be faster, since it
	// hashes every byte, and no session either, which also waits for the
	// upload client's own pass for its Repr-Digest.
	HashPerGiB time.Duration
}

// sha256PerGiB times crypto/sha256 over an in-memory 64 MiB buffer, the
// best of three, scaled to a GiB: the floor of hashing on this machine
// when nothing else runs.
func sha256PerGiB() time.Duration {
	buf := make([]byte, 64*mib)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	sha256.Sum256(buf) // warm: pages, caches
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		sha256.Sum256(buf)
		best = min(best, time.Since(start))
	}
	return best * (gib / (64 * mib))
}

// sessionUploads uploads one file through a session and directly, in
// alternating orders, SessionReps times.
func (r *onS3) sessionUploads(ctx context.Context) error {
	size, partSize := r.plan.SessionSize, r.plan.SessionPartSize
	if size <= 0 {
		return nil
	}
	file := filepath.Join(r.tmp, fmt.Sprintf("session-%d.bin", size))
	if err := writeContentFile(file, size, r.nextSalt()); err != nil {
		return err
	}
	defer os.Remove(file)
	// UNSIGNED-PAYLOAD, as a presigned part PUT is: otherwise the direct
	// path would pay two SHA-256 passes the session does not (the SDK's
	// over each part, S3's check of it) and the ratio would flatter it.
	up := manager.NewUploader(r.be.newS3(newHTTPClient(sessionInFlight, false)), func(u *manager.Uploader) {
		u.PartSize, u.Concurrency = partSize, sessionInFlight
		u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		u.ClientOptions = append(u.ClientOptions, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
		})
	})
	gw := r.servers[pStream]
	row := &sessionRow{Size: size, PartSize: partSize, InFlight: sessionInFlight, Paths: map[string]*transferResult{}, HashPerGiB: sha256PerGiB()}
	for _, p := range sessionPaths {
		row.Paths[p] = &transferResult{}
	}
	for rep := range r.plan.SessionReps {
		order := rotate(sessionPaths, rep)
		var line []string
		for _, p := range order {
			var completeStart time.Time
			var cpuBefore time.Duration
			var directKey string
			res, err := runTransfers(ctx, 1, 0, 1, r.meter, func(ctx context.Context, _ int, _ []byte) (int64, error) {
				switch p {
				case pSessionDirect:
					f, err := os.Open(file)
					if err != nil {
						return 0, err
					}
					defer f.Close()
					directKey = fmt.Sprintf("bench-session-direct/%d", r.nextSalt())
					_, err = up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String(r.be.Bucket), Key: aws.String(directKey), Body: f})
					return size, err
				default:
					_ = os.Remove(file + ".upload") // no resume of the last repetition
					sessionBefore, _ := procCPU(gw.Pid)
					defer func() {
						after, _ := procCPU(gw.Pid)
						row.SessionCPU += after - sessionBefore
					}()
					_, err := uploadclient.Upload(ctx, uploadclient.Options{
						BaseURL: gw.URL, File: file, ContentType: "application/octet-stream",
						PartSize: partSize, Parallel: sessionInFlight, HTTP: newHTTPClient(sessionInFlight, false),
						Progress: func(sent, total int64) {
							if sent == total { // every part is in S3: the complete starts
								completeStart = time.Now()
								cpuBefore, _ = procCPU(gw.Pid)
							}
						},
					})
					if err == nil && !completeStart.IsZero() {
						row.Complete += time.Since(completeStart)
						cpuAfter, _ := procCPU(gw.Pid)
						row.CompleteCPU += cpuAfter - cpuBefore
					}
					return size, err
				}
			})
			if err != nil {
				return fmt.Errorf("%s of %s: %w", p, SizeName(size), err)
			}
			if directKey != "" { // untimed: the disk space goes
				if _, err := r.be.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(r.be.Bucket), Key: aws.String(directKey)}); err != nil {
					return err
				}
			}
			row.Paths[p].add(res)
			line = append(line, fmt.Sprintf("%s %.0f", p, res.MiBps()))
		}
		logf("%s session upload %s rep %d (MiB/s): %s", r.be.Name, SizeName(size), rep+1, strings.Join(line, ", "))
	}
	r.res.Sessions = append(r.res.Sessions, row)
	logf("%s session upload %s: %s of direct multipart (target ≥ %.2f× %s; this machine's ceiling %s with complete's SHA-256 pass of %.2f s, %s with the client's too); complete %.1f s, %.2f gateway CPU-s per GiB; %.2f gateway CPU-s per session", r.be.Name, SizeName(size),
		Times(row.ratio()), targetSession, Mark(row.ratio() >= targetSession), Times(row.ceiling(1)), row.hashFloor().Seconds(), Times(row.ceiling(2)),
		row.Complete.Seconds()/float64(r.plan.SessionReps), row.completeCPUPerGiB(), row.SessionCPU.Seconds()/float64(r.plan.SessionReps))
	return nil
}

func (s *sessionRow) ratio() float64 {
	return Ratio(s.Paths[pSession].MiBps(), s.Paths[pSessionDirect].MiBps())
}

// hashFloor is the SHA-256 of one file on this machine.
func (s *sessionRow) hashFloor() time.Duration {
	return time.Duration(float64(s.HashPerGiB) * float64(s.Size) / gib)
}

// ceiling is the best session ÷ direct this machine allows: a session
// moves the parts no faster than the direct upload and then waits for
// passes SHA-256 passes over the file that the direct upload never makes
// (1: complete's read-back; 2: the upload client's Repr-Digest as well).
// 0 when either is unmeasured.
func (s *sessionRow) ceiling(passes int) float64 {
	d := s.Paths[pSessionDirect]
	if d.Count == 0 || d.Elapsed <= 0 || s.HashPerGiB <= 0 {
		return 0
	}
	direct := d.Elapsed.Seconds() / float64(d.Count)
	return direct / (direct + float64(passes)*s.hashFloor().Seconds())
}

// ceilingText prints the two ceilings, or "–" when unmeasured.
func (s *sessionRow) ceilingText() string {
	if s.ceiling(1) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s)", Times(s.ceiling(1)), Times(s.ceiling(2)))
}

func (s *sessionRow) completeCPUPerGiB() float64 {
	n := s.Paths[pSession].Bytes
	if n == 0 {
		return 0
	}
	return s.CompleteCPU.Seconds() / (float64(n) / gib)
}

// writeContentFile writes size bytes of content (salted) to path: the
// upload client reads a file.
func writeContentFile(path string, size int64, salt uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, newContent(size, salt)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func sessionTable(p printer, be *backendResult) {
	p("")
	p("### Upload through a session (%s)", be.Name)
	p("")
	p("Issue 11: one file uploaded through an upload session (`POST /Binary/$upload`, the parts `PUT`")
	p("straight to S3 on their presigned UploadPart URLs, parts of one multipart upload, by the `upload`")
	p("client's code, then `POST <upload>`, which completes the multipart upload and reads the object back")
	p("once to hash it) against the SDK's multipart upload of the same file, with the same part size and")
	p("parts in flight, its parts sent with UNSIGNED-PAYLOAD as presigned parts are. The repetitions alternate which goes first. Complete is the wall time from the last")
	p("part's arrival to the Binary; its CPU is the gateway process's over that time; session CPU is the")
	p("gateway's over the whole session.")
	p("")
	p("The ceiling is what this machine allows at best: complete hashes every byte (SHA-256, the")
	p("Binary's hash), which no complete can do faster than crypto/sha256 hashes the file from memory")
	p("here (timed in this run, 64 MiB, best of three, scaled), so session ÷ direct ≤ direct ÷ (direct +")
	p("that hash); in brackets, with the `upload` client's own pass for its `Repr-Digest` as well, made")
	p("before the session opens. A target above the ceiling cannot be met on this machine.")
	p("")
	p("| file | part size | in flight | reps | direct multipart MiB/s | session MiB/s | session ÷ direct | ceiling | target | SHA-256 of the file s | complete s (mean) | complete gateway CPU-s per GiB | gateway CPU-s per session |")
	p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :-: | ---: | ---: | ---: | ---: |")
	for _, s := range be.Sessions {
		reps := s.Paths[pSession].Count
		p("| %s | %s | %d | %d | %.0f | %.0f | %s | %s | %s | %.2f | %.1f | %.2f | %.2f |", SizeName(s.Size), SizeName(s.PartSize), s.InFlight, reps,
			s.Paths[pSessionDirect].MiBps(), s.Paths[pSession].MiBps(), Times(s.ratio()), s.ceilingText(), Mark(s.ratio() >= targetSession),
			s.hashFloor().Seconds(), s.Complete.Seconds()/float64(max(reps, 1)), s.completeCPUPerGiB(), s.SessionCPU.Seconds()/float64(max(reps, 1)))
	}
}
