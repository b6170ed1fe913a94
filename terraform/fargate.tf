# Fargate: the profile that runs capacity: fargate workers (and, by default, the operator), and the
# built-in Fluent Bit router that ships their logs to CloudWatch.

locals {
  fargate_log_group_name = "/aws/eks/${var.cluster_name}/csvkafka"
  fargate_log_group_arn  = "arn:${local.partition}:logs:${var.aws_region}:${local.account}:log-group:${local.fargate_log_group_name}"
}

data "aws_iam_policy_document" "fargate_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["eks-fargate-pods.amazonaws.com"]
    }

    # Only this cluster's Fargate profiles may use the role (confused-deputy guard).
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:eks:${var.aws_region}:${local.account}:fargateprofile/${var.cluster_name}/*"]
    }
  }
}

resource "aws_iam_role" "fargate_pod_execution" {
  name               = "csvkafka-fargate-pod-execution"
  description        = "Pulls the csvkafka image and ships Fargate pod logs to CloudWatch"
  assume_role_policy = data.aws_iam_policy_document.fargate_trust.json
}

resource "aws_iam_role_policy_attachment" "fargate_pod_execution" {
  role       = aws_iam_role.fargate_pod_execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEKSFargatePodExecutionRolePolicy"
}

data "aws_iam_policy_document" "fargate_logging" {
  statement {
    sid       = "WriteTheCsvkafkaLogGroup"
    actions   = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = [local.fargate_log_group_arn, "${local.fargate_log_group_arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "fargate_logging" {
  name   = "csvkafka-fargate-logging"
  role   = aws_iam_role.fargate_pod_execution.id
  policy = data.aws_iam_policy_document.fargate_logging.json
}

resource "aws_eks_fargate_profile" "workers" {
  cluster_name           = var.cluster_name
  fargate_profile_name   = "csvkafka-workers"
  pod_execution_role_arn = aws_iam_role.fargate_pod_execution.arn
  subnet_ids             = var.subnet_ids

  # The labels the operator stamps on capacity: fargate pods; other pods of these namespaces stay
  # on nodes.
  dynamic "selector" {
    for_each = toset(var.import_namespaces)
    content {
      namespace = selector.value
      labels    = var.fargate_labels
    }
  }

  depends_on = [kubernetes_config_map.aws_logging]
}

resource "aws_eks_fargate_profile" "operator" {
  count                  = var.operator_on_fargate ? 1 : 0
  cluster_name           = var.cluster_name
  fargate_profile_name   = "csvkafka-operator"
  pod_execution_role_arn = aws_iam_role.fargate_pod_execution.arn
  subnet_ids             = var.subnet_ids

  selector {
    namespace = var.namespace
    labels    = { "app.kubernetes.io/name" = "csvkafka", "app.kubernetes.io/component" = "operator" }
  }

  depends_on = [kubernetes_config_map.aws_logging]
}

resource "aws_cloudwatch_log_group" "fargate" {
  #checkov:skip=CKV_AWS_338:retention is a cost choice left to var.log_retention_days (the seed kept 7 days); import history lives in the resources' status
  name              = local.fargate_log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.csvkafka.arn
}

# Fargate's log router reads its configuration from this namespace and ConfigMap (fixed names).
resource "kubernetes_namespace" "aws_observability" {
  metadata {
    name   = "aws-observability"
    labels = { "aws-observability" = "enabled" }
  }
}

resource "kubernetes_config_map" "aws_logging" {
  metadata {
    name      = "aws-logging"
    namespace = kubernetes_namespace.aws_observability.metadata[0].name
  }

  data = {
    "output.conf"  = <<-EOT
      [OUTPUT]
          Name cloudwatch_logs
          Match kube.*
          region ${var.aws_region}
          log_group_name ${aws_cloudwatch_log_group.fargate.name}
          log_stream_prefix fargate-
          auto_create_group false
    EOT
    "filters.conf" = <<-EOT
      [FILTER]
          Name kubernetes
          Match kube.*
          Merge_Log On
          Keep_Log Off
          Buffer_Size 0
          Kube_Meta_Cache_TTL 300s
    EOT
  }
}
