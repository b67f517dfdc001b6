using 'main.bicep'

// Staging: production's shape (several silos, General Purpose PostgreSQL) at its smallest, to rehearse upgrades on.
// Secrets come from the deploying pipeline's environment: POSTGRES_ADMIN_PASSWORD, PROVISIONING_SECRET_KEY (base64 of
// 32 random bytes) and, optionally, STRIPE_API_KEY (a test-mode key).
param environmentName = 'staging'
param location = 'westeurope'
param controlPlaneImage = 'ghcr.io/example/controlplane:0.1.0'
param provisionerImage = 'ghcr.io/example/provisioner:0.1.0'
param controlPlaneReplicas = 2
param postgresSku = {
  name: 'Standard_D2ds_v5'
  tier: 'GeneralPurpose'
}
param postgresStorageGb = 64
param postgresAdminPassword = readEnvironmentVariable('POSTGRES_ADMIN_PASSWORD', '')
param provisioningSecretKey = readEnvironmentVariable('PROVISIONING_SECRET_KEY', '')
param instanceSecretKeys = readEnvironmentVariable('INSTANCE_SECRET_KEYS', '')
param stripeApiKey = readEnvironmentVariable('STRIPE_API_KEY', '')
