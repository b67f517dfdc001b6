using 'main.bicep'

// Development: one silo, the smallest PostgreSQL. Secrets come from the deploying shell, never from this file:
// POSTGRES_ADMIN_PASSWORD, PROVISIONING_SECRET_KEY (base64 of 32 random bytes), INSTANCE_SECRET_KEYS ("v1:<base64 of 32 random bytes>") and, optionally, STRIPE_API_KEY.
param environmentName = 'dev'
param location = 'westeurope'
param controlPlaneImage = 'ghcr.io/example/controlplane:0.1.0'
param provisionerImage = 'ghcr.io/example/provisioner:0.1.0'
param controlPlaneReplicas = 1
param postgresSku = {
  name: 'Standard_B1ms'
  tier: 'Burstable'
}
param postgresStorageGb = 32
param postgresAdminPassword = readEnvironmentVariable('POSTGRES_ADMIN_PASSWORD', '')
param provisioningSecretKey = readEnvironmentVariable('PROVISIONING_SECRET_KEY', '')
param instanceSecretKeys = readEnvironmentVariable('INSTANCE_SECRET_KEYS', '')
param stripeApiKey = readEnvironmentVariable('STRIPE_API_KEY', '')
