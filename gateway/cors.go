package gateway

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// corsAllowHeaders are the request headers a browser app may send: the
// bearer token, the FHIR and create headers, the conditionals, and the
// headers that open an upload session.
var corsAllowHeaders = []string{
	echo.HeaderAuthorization, echo.HeaderContentType, echo.HeaderAccept, "Prefer",
	"X-Security-Context", "X-Expires-At", echo.HeaderContentDisposition, echo.HeaderXRequestID,
	"If-Match", "If-None-Match", echo.HeaderIfModifiedSince, "If-Unmodified-Since",
	"If-Range", "Range", "Content-Encoding", "Repr-Digest", "Content-Digest",
	"X-Upload-Content-Type", "X-Upload-Length", "X-Upload-Part-Size",
}

// corsExposeHeaders are the response headers a browser app may read.
var corsExposeHeaders = []string{
	"ETag", echo.HeaderLocation, "Content-Location", echo.HeaderContentDisposition, echo.HeaderLastModified,
	"Content-Range", "Accept-Ranges", "X-Security-Context", echo.HeaderXRequestID, "Retry-After", echo.HeaderWWWAuthenticate,
}

// cors is echo's CORS middleware for GATEWAY_CORS_ORIGINS; with no origin
// configured (the default) it adds nothing, and browsers on other origins
// are refused by their own same-origin rule. Credentials (cookies) are not
// allowed: SMART apps send bearer tokens, which need no credentials mode.
func (s *Server) cors() echo.MiddlewareFunc {
	if len(s.cfg.CORSOrigins) == 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins:  s.cfg.CORSOrigins,
		AllowMethods:  []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions},
		AllowHeaders:  corsAllowHeaders,
		ExposeHeaders: corsExposeHeaders,
		MaxAge:        600,
	})
}
