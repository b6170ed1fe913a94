# The seed's terraform.tfvars, where its inputs still apply (s3_key does not: each import names its
# object), plus the EKS cluster the operator and its workers run in.

variable "aws_region" {
  description = "AWS region of the cluster, the buckets, the MSK cluster and the checkpoint table."
  type        = string
}

variable "cluster_name" {
  description = "Name of the existing EKS cluster (with an IAM OIDC provider for IRSA) to install into."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the EKS cluster; subnet_ids must belong to it."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (routed to S3, DynamoDB, MSK, ECR and CloudWatch) for Fargate pods and Spot nodes."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "Give at least one private subnet."
  }
}

variable "msk_cluster_arn" {
  description = "ARN of the MSK cluster (IAM access control) the workers write to."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kafka:[a-z0-9-]+:[0-9]{12}:cluster/[^/]+/[^/]+$", var.msk_cluster_arn))
    error_message = "msk_cluster_arn must look like arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID."
  }
}

variable "kafka_bootstrap_servers" {
  description = "MSK bootstrap servers (IAM listener, port 9098), used in the example import this module outputs."
  type        = string
}

variable "kafka_topic" {
  description = "Topic the workers may write to."
  type        = string
  default     = "csv-import"
}

variable "extra_kafka_topics" {
  description = "Further topics the workers may write to, e.g. dead-letter topics."
  type        = list(string)
  default     = []
}

variable "s3_buckets" {
  description = "Buckets the workers may read CSV objects from."
  type        = list(string)

  validation {
    condition     = length(var.s3_buckets) > 0
    error_message = "Give at least one source bucket."
  }
}

variable "manifest_prefixes" {
  description = "Where the workers may write import manifests (spec.receipts.manifestUri), as bucket/prefix/ (ending in /)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.manifest_prefixes : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/(.*/)?$", p))])
    error_message = "Each manifest prefix is bucket/ or bucket/prefix/ (ending in /)."
  }
}

variable "source_kms_key_arns" {
  description = "KMS keys of SSE-KMS encrypted source objects; the workers may decrypt through S3 with them."
  type        = list(string)
  default     = []
}

variable "checkpoint_table_name" {
  description = "DynamoDB checkpoint table. The seed's name, so its hand-made checkpoints keep working."
  type        = string
  default     = "csv-kafka-checkpoint"
}

variable "checkpoint_ttl_attribute" {
  description = "Item attribute (epoch seconds) after which DynamoDB deletes a checkpoint; items without it stay."
  type        = string
  default     = "expires_at"
}

variable "namespace" {
  description = "Namespace of the operator."
  type        = string
  default     = "csvkafka-system"
}

variable "import_namespaces" {
  description = "Namespaces where CsvKafkaImports live; the operator watches only these. At most 5 (Fargate selectors)."
  type        = list(string)
  default     = ["csvkafka-imports"]

  validation {
    condition     = length(var.import_namespaces) > 0 && length(var.import_namespaces) <= 5
    error_message = "Give 1 to 5 import namespaces: a Fargate profile holds at most 5 selectors."
  }
}

variable "create_namespaces" {
  description = "Create the operator and import namespaces, labelled for the restricted Pod Security Standard."
  type        = bool
  default     = true
}

variable "operator_on_fargate" {
  description = "Run the operator on Fargate (it then needs no node group of its own)."
  type        = bool
  default     = true
}

variable "fargate_labels" {
  description = "Labels the operator stamps on capacity: fargate worker pods and the Fargate profile selects."
  type        = map(string)
  default     = { "csvkafka.io/capacity" = "fargate" }
}

variable "spot_instance_types" {
  description = "Instance types of the Spot node group: several, of one size, so Spot capacity is found in more pools."
  type        = list(string)
  default     = ["m6i.xlarge", "m6a.xlarge", "m5.xlarge", "m5a.xlarge", "m7i.xlarge", "m7a.xlarge"]

  validation {
    condition     = length(var.spot_instance_types) >= 3
    error_message = "Diversify: give at least 3 instance types."
  }
}

variable "spot_scaling" {
  description = "Sizes of the Spot node group (desired is only the initial size; an autoscaler moves it)."
  type = object({
    min     = number
    max     = number
    desired = number
  })
  default = { min = 0, max = 10, desired = 1 }
}

variable "spot_taint" {
  description = "Taint Spot nodes so only pods that tolerate interruption (capacity: spot imports) land there."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the Fargate pods' CloudWatch logs (the seed's default: 7 days)."
  type        = number
  default     = 7
}

variable "ecr_repository_name" {
  description = "ECR repository of the csvkafka image."
  type        = string
  default     = "csvkafka"
}

variable "ecr_keep_images" {
  description = "How many tagged images ECR keeps; older ones expire."
  type        = number
  default     = 30
}

variable "image_tag" {
  description = "Tag of the csvkafka image in the ECR repository (tags are immutable)."
  type        = string
  default     = "0.1.0"
}

variable "chart_path" {
  description = "The csvkafka Helm chart: this repository's helm/csvkafka, or a packaged chart."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every AWS resource."
  type        = map(string)
  default     = {}
}
