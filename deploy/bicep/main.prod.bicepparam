using 'main.bicep'

// Production: three silos, zone-redundant General Purpose PostgreSQL. Secrets come from the deploying pipeline's
// environment: POSTGRES_ADMIN_PASSWORD, PROVISIONING_SECRET_KEY (base64 of 32 random bytes), INSTANCE_SECRET_KEYS ("v1:<base64 of 32 random bytes>"), STRIPE_API_KEY.
param environmentName = 'prod'
param location = 'westeurope'
param controlPlaneImage = 'ghcr.io/example/controlplane:0.1.0'
param provisionerImage = 'ghcr.io/example/provisioner:0.1.0'
param controlPlaneReplicas = 3
param postgresSku = {
  name: 'Standard_D2ds_v5'
  tier: 'GeneralPurpose'
}
param postgresStorageGb = 128
param postgresAdminPassword = readEnvironmentVariable('POSTGRES_ADMIN_PASSWORD', '')
param provisioningSecretKey = readEnvironmentVariable('PROVISIONING_SECRET_KEY', '')
param instanceSecretKeys = readEnvironmentVariable('INSTANCE_SECRET_KEYS', '')
param stripeApiKey = readEnvironmentVariable('STRIPE_API_KEY', '')
