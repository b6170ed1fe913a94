# The operator, installed with the repository's chart. The CRD is rendered from the chart's
# templates (crds.templated) and Helm's crds/ copy skipped, so `terraform apply` upgrades the CRD
# together with the operator; it is kept when the release goes, and with it the imports.

resource "kubernetes_namespace" "csvkafka" {
  for_each = var.create_namespaces ? toset(distinct(concat([var.namespace], var.import_namespaces))) : toset([])

  metadata {
    name = each.value
    # Every csvkafka pod (operator, workers, helm test) passes the restricted Pod Security Standard.
    labels = {
      "pod-security.kubernetes.io/enforce" = "restricted"
      "pod-security.kubernetes.io/warn"    = "restricted"
    }
  }
}

resource "helm_release" "csvkafka" {
  name      = "csvkafka"
  chart     = local.chart_path
  namespace = var.namespace
  skip_crds = true
  wait      = true
  timeout   = 600

  values = [yamlencode({
    crds            = { templated = true, keep = true }
    image           = { repository = aws_ecr_repository.csvkafka.repository_url, tag = var.image_tag }
    watchNamespaces = var.import_namespaces
    operator = {
      # EKS injects these for IRSA ServiceAccounts too; boto3 reads only the DEFAULT one.
      env = [for name in ["AWS_REGION", "AWS_DEFAULT_REGION"] : { name = name, value = var.aws_region }]
      serviceAccount = {
        name        = local.operator_service_account
        annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.operator.arn }
      }
    }
    worker = {
      env           = { AWS_REGION = var.aws_region, AWS_DEFAULT_REGION = var.aws_region }
      fargateLabels = var.fargate_labels
      serviceAccount = {
        name        = local.worker_service_account
        annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.worker.arn }
      }
    }
  })]

  depends_on = [
    kubernetes_namespace.csvkafka,
    aws_eks_fargate_profile.operator,
    aws_eks_fargate_profile.workers,
  ]
}
