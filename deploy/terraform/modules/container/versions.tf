terraform {
  # Creates nothing and needs no provider: only values (container definitions, a policy document)
  # computed from its inputs.
  required_version = ">= 1.6"
}
