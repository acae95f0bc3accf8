# ---- naming and network ----

variable "name" {
  description = "Name of this gateway deployment; prefixes every resource (lower-case letters, digits, hyphens)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 3-24 characters of a-z, 0-9 and '-', starting with a letter, not ending with '-' and without '--' (the ElastiCache id <name>-catalog and the ALB name must accept it)."
  }
}

variable "tags" {
  description = "Tags put on every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "VPC the ALB, tasks and Redis live in."
  type        = string
  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets (at least two AZs) for the tasks and Redis; they need a route to AWS APIs (NAT or VPC endpoints)."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 2 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "private_subnet_ids needs at least two subnet-... ids (Redis failover needs two AZs)."
  }
}

variable "public_subnet_ids" {
  description = "Public subnets (at least two AZs) for an internet-facing ALB; ignored when alb_internal is true."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for s in var.public_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "public_subnet_ids must be subnet-... ids."
  }
}

# ---- load balancer ----

variable "certificate_arn" {
  description = "ACM certificate for the HTTPS listener (covering domain_name)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "domain_name" {
  description = "Host name clients use (a DNS record for the ALB is yours to make); gives GATEWAY_BASE_URL when base_url is empty."
  type        = string
  default     = ""
}

variable "alb_internal" {
  description = "Internal ALB in the private subnets (behind another edge) instead of an internet-facing one."
  type        = bool
  default     = false
}

variable "alb_ingress_cidrs" {
  description = "IPv4 CIDRs allowed to reach the ALB on 443 (and 80, which only redirects)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
  validation {
    condition     = alltrue([for c in var.alb_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "alb_ingress_cidrs must be IPv4 CIDR blocks."
  }
}

variable "alb_ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "alb_idle_timeout" {
  description = "Seconds a connection may carry no data before the ALB closes it (slow uploads and downloads)."
  type        = number
  default     = 300
  validation {
    condition     = var.alb_idle_timeout >= 1 && var.alb_idle_timeout <= 4000
    error_message = "alb_idle_timeout must be 1-4000 seconds."
  }
}

variable "deletion_protection" {
  description = "Protect the ALB from deletion."
  type        = bool
  default     = true
}

# ---- S3 ----

variable "create_bucket" {
  description = "Create the content bucket (with encryption, public access block, TLS-only policy and lifecycle rule); false uses the existing bucket_name and configures nothing on it."
  type        = bool
  default     = true
}

variable "bucket_name" {
  description = "Bucket name; null makes <name>-binaries-<account id>. Required when create_bucket is false."
  type        = string
  default     = null
  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name."
  }
}

variable "s3_prefix" {
  description = "Key prefix of every object the gateway writes (GATEWAY_S3_PREFIX); the task role is limited to it and the lifecycle rule covers it."
  type        = string
  default     = "binaries/"
  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/$", var.s3_prefix))
    error_message = "s3_prefix must be non-empty, not start with '/', and end with '/' (e.g. binaries/)."
  }
}

variable "kms_key_arn" {
  description = "Customer KMS key for SSE-KMS on the bucket (and Redis at rest); null uses SSE-S3 (AES256) and AWS-owned keys."
  type        = string
  default     = null
  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN or null."
  }
}

variable "versioning_enabled" {
  description = "S3 versioning. Off by default: the gateway keeps its own versions, and a deleted Binary should be gone; on guards against operator mistakes at the cost of noncurrent copies (kept noncurrent_version_retention_days)."
  type        = bool
  default     = false
}

variable "noncurrent_version_retention_days" {
  description = "Days noncurrent object versions are kept when versioning is on."
  type        = number
  default     = 7
  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

variable "retention_days" {
  description = "Days after which the lifecycle rule deletes objects under s3_prefix, and the gateway's maximum retention (GATEWAY_MAX_RETENTION): an X-Expires-At later than now + retention_days is refused with 400, and a Binary that names no expiry gets exactly retention_days."
  type        = number
  default     = 30
  validation {
    condition     = var.retention_days >= 1 && var.retention_days <= 3650 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number from 1 to 3650."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete a non-empty bucket (test environments only)."
  type        = bool
  default     = false
}

# ---- Redis ----

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
  validation {
    condition     = startswith(var.redis_node_type, "cache.")
    error_message = "redis_node_type must be an ElastiCache node type such as cache.t4g.small."
  }
}

variable "redis_num_cache_clusters" {
  description = "Nodes in the replication group: one primary plus replicas; at least 2 for automatic failover."
  type        = number
  default     = 2
  validation {
    condition     = var.redis_num_cache_clusters >= 2 && var.redis_num_cache_clusters <= 6
    error_message = "redis_num_cache_clusters must be 2-6 (automatic failover needs a replica)."
  }
}

variable "redis_engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "redis_parameter_group_name" {
  description = "ElastiCache parameter group (must match the engine version's family)."
  type        = string
  default     = "default.redis7"
}

variable "redis_snapshot_retention_limit" {
  description = "Daily snapshots kept (0 turns snapshots off). Records can also be rebuilt from S3 with `fhir-binary-gateway reindex`."
  type        = number
  default     = 1
  validation {
    condition     = var.redis_snapshot_retention_limit >= 0 && var.redis_snapshot_retention_limit <= 35
    error_message = "redis_snapshot_retention_limit must be 0-35."
  }
}

variable "secrets_kms_key_arn" {
  description = "Customer KMS key for the Redis secret in Secrets Manager; null uses aws/secretsmanager."
  type        = string
  default     = null
}

# ---- ECS ----

variable "create_cluster" {
  description = "Create the ECS cluster; false runs the service in the existing cluster_name."
  type        = bool
  default     = true
}

variable "cluster_name" {
  description = "Existing ECS cluster (Fargate) to run in when create_cluster is false."
  type        = string
  default     = null
}

variable "container_image" {
  description = "Gateway image (e.g. <account>.dkr.ecr.<region>.amazonaws.com/fhir-binary-gateway:v1.2.3); pin a tag or digest."
  type        = string
  validation {
    condition     = length(var.container_image) > 0 && !endswith(var.container_image, ":latest")
    error_message = "container_image must be set and pinned (not :latest)."
  }
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64 (the image must be built for it)."
  type        = string
  default     = "X86_64"
  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "task_cpu" {
  description = "Fargate task CPU units."
  type        = number
  default     = 512
  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.task_cpu)
    error_message = "task_cpu must be 256, 512, 1024, 2048 or 4096."
  }
}

variable "task_memory" {
  description = "Fargate task memory (MiB); must suit task_cpu."
  type        = number
  default     = 1024
  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 30720
    error_message = "task_memory must be 512-30720 MiB."
  }
}

variable "min_capacity" {
  description = "Fewest tasks (also the first desired count); 2 keeps one per AZ."
  type        = number
  default     = 2
  validation {
    condition     = var.min_capacity >= 1
    error_message = "min_capacity must be at least 1."
  }
}

variable "max_capacity" {
  description = "Most tasks autoscaling may run."
  type        = number
  default     = 10
  validation {
    condition     = var.max_capacity >= 1 && var.max_capacity <= 100
    error_message = "max_capacity must be 1-100."
  }
}

variable "cpu_target_percent" {
  description = "Average CPU the CPU scaling policy aims for."
  type        = number
  default     = 60
  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be 10-90."
  }
}

variable "requests_per_target" {
  description = "ALB requests per task per minute the request-count scaling policy aims for."
  type        = number
  default     = 1000
  validation {
    condition     = var.requests_per_target >= 1
    error_message = "requests_per_target must be positive."
  }
}

variable "container_insights" {
  description = "CloudWatch Container Insights on the cluster (extra cost)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the gateway's logs (and AuditEvent lines)."
  type        = number
  default     = 90
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "logs_kms_key_arn" {
  description = "Customer KMS key for the log group; null uses CloudWatch's own encryption."
  type        = string
  default     = null
}

# ---- gateway settings (GATEWAY_*; see the README for each) ----

variable "base_url" {
  description = "GATEWAY_BASE_URL; empty: https://<domain_name>, or from the request when domain_name is empty too."
  type        = string
  default     = ""
  validation {
    condition     = var.base_url == "" || can(regex("^https?://[^/]+", var.base_url))
    error_message = "base_url must be an absolute http(s) URL or empty."
  }
}

variable "base_path" {
  description = "GATEWAY_BASE_PATH, e.g. /uscore/v1/bulk-data."
  type        = string
  default     = ""
  validation {
    condition     = var.base_path == "" || can(regex("^/[^?#* ]*$", var.base_path))
    error_message = "base_path must be empty or start with '/'."
  }
}

variable "s3_public_endpoint" {
  description = "GATEWAY_S3_PUBLIC_ENDPOINT: endpoint redirect URLs are signed for, when clients reach S3 by another host; usually empty on AWS."
  type        = string
  default     = ""
}

variable "download_mode" {
  description = "GATEWAY_DOWNLOAD_MODE: stream, redirect or auto."
  type        = string
  default     = "auto"
  validation {
    condition     = contains(["stream", "redirect", "auto"], var.download_mode)
    error_message = "download_mode must be stream, redirect or auto."
  }
}

variable "redirect_min_size" {
  description = "GATEWAY_REDIRECT_MIN_SIZE: in auto mode, objects at least this large are redirected to S3."
  type        = string
  default     = "8MiB"
  validation {
    condition     = can(regex("^[0-9]+(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$", var.redirect_min_size))
    error_message = "redirect_min_size must be a size such as 8MiB."
  }
}

variable "presign_ttl" {
  description = "GATEWAY_PRESIGN_TTL: longest life of a presigned URL (Go duration)."
  type        = string
  default     = "5m"
  validation {
    condition     = can(regex("^([0-9]+(ns|us|ms|s|m|h))+$", var.presign_ttl))
    error_message = "presign_ttl must be a Go duration such as 5m."
  }
}

variable "inline_max_size" {
  description = "GATEWAY_INLINE_MAX_SIZE: largest content returned base64 in Binary.data."
  type        = string
  default     = "1MiB"
  validation {
    condition     = can(regex("^[0-9]+(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$", var.inline_max_size))
    error_message = "inline_max_size must be a size such as 1MiB."
  }
}

variable "max_upload_size" {
  description = "GATEWAY_MAX_UPLOAD_SIZE: larger uploads get 413."
  type        = string
  default     = "5GiB"
  validation {
    condition     = can(regex("^[0-9]+(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$", var.max_upload_size))
    error_message = "max_upload_size must be a size such as 5GiB."
  }
}

variable "default_retention" {
  description = "GATEWAY_DEFAULT_RETENTION: expiry of Binaries that name none, at most retention_days; empty: retention_days (the gateway's maximum retention)."
  type        = string
  default     = ""
  validation {
    condition     = var.default_retention == "" || can(regex("^([0-9]+h)?([0-9]+m)?([0-9]+s)?$", var.default_retention)) && var.default_retention != ""
    error_message = "default_retention must be empty or a duration of hours, minutes and seconds such as 168h or 90m."
  }
}

variable "auth" {
  description = "GATEWAY_AUTH: none or jwt. Anything reachable by others should use jwt."
  type        = string
  default     = "jwt"
  validation {
    condition     = contains(["none", "jwt"], var.auth)
    error_message = "auth must be none or jwt."
  }
}

variable "jwt_jwks_url" {
  description = "GATEWAY_JWT_JWKS_URL: where the token-signing public keys are."
  type        = string
  default     = ""
}

variable "jwt_jwks_file" {
  description = "GATEWAY_JWT_JWKS_FILE: a JWKS file inside the image (instead of jwt_jwks_url)."
  type        = string
  default     = ""
}

variable "jwt_issuer" {
  description = "GATEWAY_JWT_ISSUER: required iss."
  type        = string
  default     = ""
}

variable "jwt_audience" {
  description = "GATEWAY_JWT_AUDIENCE: required aud."
  type        = string
  default     = ""
}

variable "backend_timeout" {
  description = "GATEWAY_BACKEND_TIMEOUT: longest wait for Redis or S3 before answering 503."
  type        = string
  default     = "2s"
  validation {
    condition     = can(regex("^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$", var.backend_timeout))
    error_message = "backend_timeout must be a Go duration such as 2s."
  }
}

variable "shutdown_grace_seconds" {
  description = "GATEWAY_SHUTDOWN_GRACE in seconds; also the ALB deregistration delay (ECS stopTimeout is this + 5, at most 120)."
  type        = number
  default     = 30
  validation {
    condition     = var.shutdown_grace_seconds >= 0 && var.shutdown_grace_seconds <= 115
    error_message = "shutdown_grace_seconds must be 0-115 (Fargate stops a task 120 s after SIGTERM at the latest)."
  }
}

variable "trusted_clients" {
  description = "GATEWAY_TRUSTED_CLIENTS: client ids that may import on behalf of others."
  type        = list(string)
  default     = []
}

variable "multi_tenant" {
  description = "GATEWAY_MULTI_TENANT: serve FHIR routes under /{tenant}/ (needs auth = jwt)."
  type        = bool
  default     = false
}

variable "tenant_claim" {
  description = "GATEWAY_TENANT_CLAIM: token claim that names the tenant."
  type        = string
  default     = "tenant"
  validation {
    condition     = length(var.tenant_claim) > 0
    error_message = "tenant_claim must not be empty."
  }
}

variable "tombstone_ttl" {
  description = "GATEWAY_TOMBSTONE_TTL: how long a deleted or expired id keeps answering 410."
  type        = string
  default     = "720h"
  validation {
    condition     = can(regex("^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$", var.tombstone_ttl))
    error_message = "tombstone_ttl must be a Go duration such as 720h."
  }
}

variable "redis_prefix" {
  description = "GATEWAY_REDIS_PREFIX: prefix of every Redis key this gateway writes."
  type        = string
  default     = "fbg"
  validation {
    condition     = length(var.redis_prefix) > 0
    error_message = "redis_prefix must not be empty."
  }
}

variable "log_level" {
  description = "GATEWAY_LOG_LEVEL: debug, info, warn or error."
  type        = string
  default     = "info"
  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be debug, info, warn or error."
  }
}

variable "read_header_timeout" {
  description = "GATEWAY_READ_HEADER_TIMEOUT: longest time to read request headers."
  type        = string
  default     = "10s"
  validation {
    condition     = can(regex("^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$", var.read_header_timeout))
    error_message = "read_header_timeout must be a Go duration such as 10s."
  }
}

variable "cors_origins" {
  description = "GATEWAY_CORS_ORIGINS: browser origins (https://app.example.org) allowed by CORS; the bucket's CORS allows GET, HEAD and PUT from the same origins, GET and HEAD from `null` (a redirected fetch), and exposes ETag and Content-Disposition."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for o in var.cors_origins : can(regex("^https?://[^/*]+$", o))])
    error_message = "cors_origins must be origins such as https://app.example.org (scheme and host, no path, no wildcard)."
  }
}

variable "import_prefixes" {
  description = "GATEWAY_IMPORT_PREFIXES: key prefixes (inside s3_prefix) that $import may register; empty: the gateway's own default. The export_writer_policy_json output allows writing exactly there."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for p in var.import_prefixes : length(trimprefix(p, "/")) > 0 && !strcontains(p, "..") && endswith(p, "/")])
    error_message = "import_prefixes must be non-empty key prefixes ending in '/', without '..'."
  }
}

variable "store_gzip_types" {
  description = "GATEWAY_STORE_GZIP: media types stored gzip-compressed; null: the gateway's default (the ndjson types)."
  type        = list(string)
  default     = null
  validation {
    condition     = var.store_gzip_types == null || length(coalesce(var.store_gzip_types, [])) > 0
    error_message = "store_gzip_types must be null (the default) or name at least one media type: ECS drops empty environment values, so an empty list cannot reach the gateway."
  }
}

variable "upload_session_ttl" {
  description = "GATEWAY_UPLOAD_SESSION_TTL: longest life of an upload session (Go duration)."
  type        = string
  default     = "24h"
  validation {
    condition     = can(regex("^([0-9]+(ns|us|ms|s|m|h))+$", var.upload_session_ttl))
    error_message = "upload_session_ttl must be a Go duration such as 24h."
  }
}

variable "complete_timeout" {
  description = "GATEWAY_COMPLETE_TIMEOUT: longest time completing an upload session may take (S3 copies and read-back), grown by 1 s per 50 MiB of the upload (Go duration)."
  type        = string
  default     = "60s"
  validation {
    condition     = can(regex("^([0-9]+(ns|us|ms|s|m|h))+$", var.complete_timeout))
    error_message = "complete_timeout must be a Go duration such as 60s."
  }
}

# ---- logs, audit and compliance ----

variable "access_logs_enabled" {
  description = "ALB access logs and S3 server access logs of the content bucket, into the log bucket (access_logs_bucket, or one the module makes)."
  type        = bool
  default     = false
}

variable "access_logs_bucket" {
  description = "Existing bucket for the access logs (its policy must let the ELB and S3 log delivery write); null: the module makes <name>-logs-<account id>."
  type        = string
  default     = null
}

variable "access_logs_retention_days" {
  description = "Days the module's log bucket keeps access logs (default: six years)."
  type        = number
  default     = 2192
  validation {
    condition     = var.access_logs_retention_days >= 1 && floor(var.access_logs_retention_days) == var.access_logs_retention_days
    error_message = "access_logs_retention_days must be a whole number of days, at least 1."
  }
}

variable "audit_log_group_enabled" {
  description = "AuditEvent lines go to their own log group (through the audit-router sidecar); false: they go to stdout with the application log."
  type        = bool
  default     = true
}

variable "audit_log_retention_days" {
  description = "Days CloudWatch keeps the AuditEvent log group; default 2192, the first CloudWatch value of at least six years (HIPAA 45 CFR 164.316(b)(2))."
  type        = number
  default     = 2192
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.audit_log_retention_days)
    error_message = "audit_log_retention_days must be a value CloudWatch Logs accepts (..., 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "audit_router_image" {
  description = "Image of the audit-router sidecar (needs sh, mkfifo, chown, cat and test: busybox); pin a tag or digest."
  type        = string
  default     = "public.ecr.aws/docker/library/busybox:1.37.0"
  validation {
    condition     = length(var.audit_router_image) > 0 && !endswith(var.audit_router_image, ":latest")
    error_message = "audit_router_image must be set and pinned (not :latest)."
  }
}

# ---- operations ----

variable "gc_enabled" {
  description = "Run `fhir-binary-gateway gc` on gc_schedule (EventBridge Scheduler → ECS RunTask), so expired and deleted files leave S3 soon after they expire."
  type        = bool
  default     = true
}

variable "gc_schedule" {
  description = "EventBridge Scheduler expression for gc, e.g. rate(1 hour) or cron(15 * * * ? *)."
  type        = string
  default     = "rate(1 hour)"
  validation {
    condition     = can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$", var.gc_schedule))
    error_message = "gc_schedule must be rate(N unit) or cron(...)."
  }
}

variable "metrics_security_group_ids" {
  description = "Security groups (e.g. Prometheus) that may reach the tasks' port 8080 for /metrics, which the ALB does not serve."
  type        = list(string)
  default     = []
}

variable "s3_endpoint_route_table_ids" {
  description = "Route tables of the private subnets to attach an S3 gateway VPC endpoint to (streamed traffic off the NAT gateway); empty: no endpoint."
  type        = list(string)
  default     = []
}

variable "api_gateway_in_front" {
  description = "The ALB is fronted by API Gateway (10 MB payloads, 29 s): the module then requires redirect_min_size and max_upload_size under 10MB and download_mode auto or redirect; larger uploads use upload sessions."
  type        = bool
  default     = false
}

variable "otlp_endpoint" {
  description = "OTEL_EXPORTER_OTLP_ENDPOINT: OpenTelemetry collector (OTLP/HTTP) the gateway sends traces to, e.g. http://localhost:4318 for an ADOT sidecar; empty: tracing off."
  type        = string
  default     = ""
  validation {
    condition     = var.otlp_endpoint == "" || can(regex("^https?://[^/]+", var.otlp_endpoint))
    error_message = "otlp_endpoint must be empty or an http(s) URL such as http://localhost:4318."
  }
}
