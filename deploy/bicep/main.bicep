// The control plane on Azure: Container Apps (Dapr built in) for the control plane and the Provisioner, PostgreSQL
// flexible server for all state, Service Bus for Dapr pub/sub, Key Vault for secrets (and Dapr's secret store on it),
// Log Analytics, and one user-assigned identity whose rights are exactly what the Azure backend manages.
//
// Container Apps rather than AKS: Dapr, ingress, scaling and revisions are part of the platform, there is no cluster to
// patch, and the Azure backend places each customer instance as a Container App in the same environment.
targetScope = 'subscription'

@description('Name of this installation\'s environment: dev, staging or prod. Names and sizes follow it.')
@allowed(['dev', 'staging', 'prod'])
param environmentName string

@description('Region of every resource.')
param location string

@description('Container image of the control plane (ControlPlane/), with its tag.')
param controlPlaneImage string

@description('Container image of the Provisioner (Provisioner/), with its tag.')
param provisionerImage string

@description('Silo replicas of the control plane; they form one Orleans cluster through PostgreSQL.')
@minValue(1)
@maxValue(10)
param controlPlaneReplicas int = 2

@description('PostgreSQL administrator login.')
param postgresAdminLogin string = 'controlplane'

@description('PostgreSQL administrator password; it goes to Key Vault inside the connection string, nowhere else.')
@secure()
param postgresAdminPassword string

@description('Base64 of 32 random bytes: encrypts instance passwords on the bus (Provisioning:Dapr secret).')
@secure()
param provisioningSecretKey string

@description('The key set that seals instance passwords in PostgreSQL, e.g. "v1:<base64 of 32 random bytes>"; rotate by adding " v2:<…>" (Secrets:SecretStore).')
@secure()
param instanceSecretKeys string

@description('Stripe secret key; empty leaves billing unsent (recorded and reconciled only).')
@secure()
param stripeApiKey string = ''

@description('PostgreSQL compute: Burstable for dev, GeneralPurpose for production.')
param postgresSku object = {
  name: 'Standard_B1ms'
  tier: 'Burstable'
}

@description('PostgreSQL storage in GiB.')
param postgresStorageGb int = 32

@description('Prefix of the resource groups the Azure backend creates per tenant.')
param tenantResourceGroupPrefix string = 'tenant-'

var prefix = 'cp-${environmentName}'
var tags = {
  application: 'controlplane'
  environment: environmentName
}

resource platform 'Microsoft.Resources/resourceGroups@2022-09-01' = {
  name: '${prefix}-platform'
  location: location
  tags: tags
}

module data 'modules/data.bicep' = {
  scope: platform
  name: 'data'
  params: {
    prefix: prefix
    location: location
    tags: tags
    postgresAdminLogin: postgresAdminLogin
    postgresAdminPassword: postgresAdminPassword
    provisioningSecretKey: provisioningSecretKey
    instanceSecretKeys: instanceSecretKeys
    stripeApiKey: stripeApiKey
    postgresSku: postgresSku
    postgresStorageGb: postgresStorageGb
  }
}

module apps 'modules/apps.bicep' = {
  scope: platform
  name: 'apps'
  params: {
    prefix: prefix
    location: location
    tags: tags
    controlPlaneImage: controlPlaneImage
    provisionerImage: provisionerImage
    controlPlaneReplicas: controlPlaneReplicas
    identityId: data.outputs.identityId
    identityClientId: data.outputs.identityClientId
    keyVaultName: data.outputs.keyVaultName
    keyVaultUri: data.outputs.keyVaultUri
    serviceBusNamespace: data.outputs.serviceBusNamespace
    storageAccountName: data.outputs.storageAccountName
    instancesShareName: data.outputs.instancesShareName
    workspaceName: data.outputs.workspaceName
    hasStripeKey: !empty(stripeApiKey)
    tenantResourceGroupPrefix: tenantResourceGroupPrefix
  }
}

// What the Azure backend does, and nothing more: tenants' resource groups and the Container Apps in them, placed in the
// platform's environment. A custom role at the subscription (where tenants' groups are created), not Contributor.
resource backendRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, prefix, 'instance-provisioner')
  properties: {
    roleName: '${prefix} instance provisioner'
    description: 'Creates, tags and deletes tenants\' resource groups and the Container Apps of hosted instances in them.'
    type: 'CustomRole'
    assignableScopes: [
      subscription().id
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Resources/subscriptions/resourceGroups/read'
          'Microsoft.Resources/subscriptions/resourceGroups/write'
          'Microsoft.Resources/subscriptions/resourceGroups/delete'
          'Microsoft.App/containerApps/*'
          'Microsoft.App/managedEnvironments/read'
          'Microsoft.App/managedEnvironments/join/action'
          'Microsoft.App/managedEnvironments/storages/read'
          'Microsoft.App/locations/containerappOperationStatuses/read'
          'Microsoft.App/locations/containerappOperationResults/read'
        ]
        notActions: []
      }
    ]
  }
}

resource backendRoleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, prefix, 'instance-provisioner-assignment')
  properties: {
    roleDefinitionId: backendRole.id
    principalId: data.outputs.identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output controlPlaneUrl string = apps.outputs.controlPlaneUrl
output managedEnvironmentId string = apps.outputs.managedEnvironmentId
output identityClientId string = data.outputs.identityClientId
output keyVaultName string = data.outputs.keyVaultName
