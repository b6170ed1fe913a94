provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge({ "app.kubernetes.io/part-of" = "csvkafka" }, var.tags)
  }
}

data "aws_eks_cluster_auth" "this" {
  name = var.cluster_name
}

locals {
  kubernetes = {
    host                   = data.aws_eks_cluster.this.endpoint
    cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)
    token                  = data.aws_eks_cluster_auth.this.token
  }
}

provider "kubernetes" {
  host                   = local.kubernetes.host
  cluster_ca_certificate = local.kubernetes.cluster_ca_certificate
  token                  = local.kubernetes.token
}

provider "helm" {
  kubernetes = local.kubernetes
}
