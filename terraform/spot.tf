# A Spot managed node group for capacity: spot imports. EKS labels its nodes
# eks.amazonaws.com/capacityType=SPOT (the operator's nodeSelector) and, with Capacity Rebalancing,
# drains a node on a rebalance recommendation or the two-minute notice; workers checkpoint on SIGTERM.

data "aws_iam_policy_document" "node_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "spot_node" {
  name               = "csvkafka-spot-node"
  description        = "Nodes of the csvkafka Spot node group"
  assume_role_policy = data.aws_iam_policy_document.node_trust.json
}

resource "aws_iam_role_policy_attachment" "spot_node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
  ])
  role       = aws_iam_role.spot_node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_launch_template" "spot" {
  name_prefix = "csvkafka-spot-"
  description = "csvkafka Spot nodes: IMDSv2 only, out of reach of pods; encrypted root volume"

  # Hop limit 1: containers (one hop further) cannot reach the instance metadata service, so worker
  # pods get AWS credentials only from their IRSA role, never from the node's role.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = 50
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge({ Name = "csvkafka-spot" }, var.tags)
  }
}

resource "aws_eks_node_group" "spot" {
  cluster_name    = var.cluster_name
  node_group_name = "csvkafka-spot"
  node_role_arn   = aws_iam_role.spot_node.arn
  subnet_ids      = var.subnet_ids
  capacity_type   = "SPOT"
  instance_types  = var.spot_instance_types

  launch_template {
    id      = aws_launch_template.spot.id
    version = aws_launch_template.spot.latest_version
  }

  scaling_config {
    min_size     = var.spot_scaling.min
    max_size     = var.spot_scaling.max
    desired_size = var.spot_scaling.desired
  }

  update_config {
    max_unavailable_percentage = 33
  }

  labels = {
    "csvkafka.io/capacity" = "spot"
  }

  # The operator's Spot toleration names this key (any effect), so capacity: spot pods land here and
  # pods that cannot take an interruption stay off.
  dynamic "taint" {
    for_each = var.spot_taint ? [1] : []
    content {
      key    = "eks.amazonaws.com/capacityType"
      value  = "SPOT"
      effect = "NO_SCHEDULE"
    }
  }

  tags = {
    # Cluster Autoscaler discovers the group by these and scales it from zero.
    "k8s.io/cluster-autoscaler/enabled"                                            = "true"
    "k8s.io/cluster-autoscaler/${var.cluster_name}"                                = "owned"
    "k8s.io/cluster-autoscaler/node-template/label/eks.amazonaws.com/capacityType" = "SPOT"
  }

  lifecycle {
    # An autoscaler owns the size once the group exists.
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.spot_node]
}
