// The Container Apps environment with its Dapr components and instance storage, the control plane and the Provisioner.
param prefix string
param location string
param tags object
param controlPlaneImage string
param provisionerImage string
param controlPlaneReplicas int
param identityId string
param identityClientId string
param keyVaultName string
param keyVaultUri string
param serviceBusNamespace string
param storageAccountName string
param instancesShareName string
param workspaceName string
param hasStripeKey bool
param tenantResourceGroupPrefix string

var httpPort = 8080
// The control plane's Dapr routes answer only here, on loopback, where the replica's sidecar calls it; never on the ingress port.
var daprAppPort = 8081
var siloPort = 11111

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-01-01' existing = {
  name: storageAccountName
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${prefix}-env'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
  }
}

// Hosted instances' data: each instance mounts its own folder of this share (Provisioner:Azure:StorageName).
resource instances 'Microsoft.App/managedEnvironments/storages@2024-03-01' = {
  parent: environment
  name: 'instances'
  properties: {
    azureFile: {
      accountName: storage.name
      accountKey: storage.listKeys().keys[0].value
      shareName: instancesShareName
      accessMode: 'ReadWrite'
    }
  }
}

// deploy/dapr/ on Azure: pub/sub on Service Bus topics, the secret store on Key Vault, both as the managed identity.
resource pubsub 'Microsoft.App/managedEnvironments/daprComponents@2024-03-01' = {
  parent: environment
  name: 'pubsub'
  properties: {
    componentType: 'pubsub.azure.servicebus.topics'
    version: 'v1'
    metadata: [
      {
        name: 'namespaceName'
        value: '${serviceBusNamespace}.servicebus.windows.net'
      }
      {
        name: 'azureClientId'
        value: identityClientId
      }
      {
        // A command runs as long as its steps (an instance start, a startup timeout): lock it longer than the longest.
        name: 'lockDurationInSec'
        value: '300'
      }
      {
        name: 'maxDeliveryCount'
        value: '20'
      }
    ]
    scopes: [
      'controlplane'
      'provisioner'
    ]
  }
}

resource secretStore 'Microsoft.App/managedEnvironments/daprComponents@2024-03-01' = {
  parent: environment
  name: 'secrets'
  properties: {
    componentType: 'secretstores.azure.keyvault'
    version: 'v1'
    metadata: [
      {
        name: 'vaultName'
        value: keyVaultName
      }
      {
        name: 'azureClientId'
        value: identityClientId
      }
    ]
    scopes: [
      'controlplane'
      'provisioner'
    ]
  }
}

var transportEnv = [
  {
    name: 'Provisioning__Transport'
    value: 'Dapr'
  }
  {
    name: 'Provisioning__Dapr__SecretStore'
    value: 'secrets'
  }
  {
    name: 'Provisioning__Dapr__SecretName'
    value: 'provisioning-secret-key'
  }
]

var keyVaultSecrets = concat(
  [
    {
      name: 'postgres-connection-string'
      keyVaultUrl: '${keyVaultUri}secrets/postgres-connection-string'
      identity: identityId
    }
  ],
  hasStripeKey
    ? [
        {
          name: 'stripe-api-key'
          keyVaultUrl: '${keyVaultUri}secrets/stripe-api-key'
          identity: identityId
        }
      ]
    : []
)

resource controlPlane 'Microsoft.App/containerApps@2024-03-01' = {
  name: '${prefix}-api'
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      secrets: keyVaultSecrets
      ingress: {
        external: true
        targetPort: httpPort
        transport: 'http'
        allowInsecure: false
      }
      dapr: {
        enabled: true
        appId: 'controlplane'
        appPort: daprAppPort
        appProtocol: 'http'
      }
    }
    template: {
      containers: [
        {
          name: 'controlplane'
          image: controlPlaneImage
          // Container Apps has no downward API: the silo advertises the replica's own address, read at start.
          command: [
            '/bin/sh'
            '-c'
            'export Orleans__AdvertisedIPAddress="$(hostname -i | cut -d" " -f1)"; exec dotnet /app/ControlPlane.dll'
          ]
          resources: {
            cpu: json('1.0')
            memory: '2Gi'
          }
          env: concat(transportEnv, [
            {
              name: 'ControlPlane__Mode'
              value: 'Cluster'
            }
            {
              name: 'Secrets__SecretStore'
              value: 'secrets'
            }
            {
              name: 'Secrets__SecretName'
              value: 'instance-secret-keys'
            }
            {
              name: 'Urls'
              value: 'http://0.0.0.0:${httpPort}'
            }
            {
              name: 'Orleans__ListenAddress'
              value: '0.0.0.0'
            }
            {
              name: 'Orleans__SiloPort'
              value: string(siloPort)
            }
            {
              name: 'Instances__DefaultBackend'
              value: 'azure'
            }
            {
              name: 'Provisioning__Dapr__AppPort'
              value: string(daprAppPort)
            }
            {
              // Instances are container apps of this environment: an event naming any other host is not believed.
              name: 'Provisioning__Dapr__EndpointHosts__0'
              value: '*.${environment.properties.defaultDomain}'
            }
            {
              name: 'ConnectionStrings__ControlPlane'
              secretRef: 'postgres-connection-string'
            }
          ], hasStripeKey ? [
            {
              name: 'Stripe__ApiKey'
              secretRef: 'stripe-api-key'
            }
          ] : [])
          probes: [
            {
              type: 'Startup'
              httpGet: {
                path: '/healthz'
                port: httpPort
              }
              periodSeconds: 2
              failureThreshold: 60
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/readyz'
                port: httpPort
              }
              periodSeconds: 5
            }
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: httpPort
              }
              periodSeconds: 10
              failureThreshold: 6
            }
          ]
        }
      ]
      scale: {
        minReplicas: controlPlaneReplicas
        maxReplicas: controlPlaneReplicas
      }
    }
  }
}

resource provisioner 'Microsoft.App/containerApps@2024-03-01' = {
  name: '${prefix}-provisioner'
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      dapr: {
        enabled: true
        appId: 'provisioner'
        appPort: httpPort
        appProtocol: 'http'
      }
    }
    template: {
      containers: [
        {
          name: 'provisioner'
          image: provisionerImage
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
          env: concat(transportEnv, [
            {
              name: 'Urls'
              value: 'http://0.0.0.0:${httpPort}'
            }
            {
              name: 'Provisioner__Azure__Enabled'
              value: 'true'
            }
            {
              name: 'Provisioner__Azure__SubscriptionId'
              value: subscription().subscriptionId
            }
            {
              name: 'Provisioner__Azure__Location'
              value: location
            }
            {
              name: 'Provisioner__Azure__ManagedEnvironmentId'
              value: environment.id
            }
            {
              name: 'Provisioner__Azure__StorageName'
              value: instances.name
            }
            {
              name: 'Provisioner__Azure__ResourceGroupPrefix'
              value: tenantResourceGroupPrefix
            }
            {
              name: 'Provisioner__Azure__ManagedIdentityClientId'
              value: identityClientId
            }
          ])
          probes: [
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: httpPort
              }
              periodSeconds: 10
            }
          ]
        }
      ]
      scale: {
        minReplicas: 1
        maxReplicas: 2
      }
    }
  }
  dependsOn: [
    pubsub
    secretStore
  ]
}

output controlPlaneUrl string = 'https://${controlPlane.properties.configuration.ingress.fqdn}'
output managedEnvironmentId string = environment.id
