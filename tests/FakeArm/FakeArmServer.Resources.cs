using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Extensions;

namespace FakeArm;

public sealed partial class FakeArmServer
{
    private JsonObject Group(string name)
    {
        lock (_gate)
        {
            return _groups.TryGetValue(name, out var group)
                ? group.DeepClone().AsObject()
                : throw new ArmException(404, "ResourceGroupNotFound", $"Resource group '{name}' could not be found.");
        }
    }

    private (int, JsonObject?) PutGroup(string name, JsonObject? body)
    {
        var location = (string?)body?["location"] ?? throw new ArmException(400, "LocationRequired", "The location property is required for this definition.");
        lock (_gate)
        {
            if (_groups.TryGetValue(name, out var existing) && (string?)existing["properties"]!["provisioningState"] == "Deleting")
            {
                throw new ArmException(409, "ResourceGroupBeingDeleted", $"The resource group '{name}' is in deprovisioning state and cannot perform this operation.");
            }

            var created = !_groups.ContainsKey(name);
            _groups[name] = new JsonObject
            {
                ["id"] = $"/subscriptions/{SubscriptionId}/resourceGroups/{name}",
                ["name"] = name,
                ["type"] = "Microsoft.Resources/resourceGroups",
                ["location"] = location,
                ["tags"] = body!["tags"]?.DeepClone() ?? new JsonObject(),
                ["properties"] = new JsonObject { ["provisioningState"] = "Succeeded" },
            };
            return (created ? 201 : 200, _groups[name].DeepClone().AsObject());
        }
    }

    private (int, JsonObject?) DeleteGroup(HttpContext context, string name)
    {
        lock (_gate)
        {
            if (!_groups.TryGetValue(name, out var group))
            {
                return (200, null);
            }

            group["properties"]!["provisioningState"] = "Deleting";
            var operation = Begin(() =>
            {
                foreach (var app in _apps.Values.Where(app => string.Equals(app.Group, name, StringComparison.OrdinalIgnoreCase)).ToList())
                {
                    Runner.Stop(app.Id, forget: true);
                    _apps.Remove(AppKey(app.Group, app.Name));
                }

                _groups.Remove(name);
            });
            context.Response.Headers.Location = $"{BaseUrl}/subscriptions/{SubscriptionId}/operationresults/{operation}?api-version=2022-09-01";
            context.Response.Headers.RetryAfter = "1";
            return (202, null);
        }
    }

    private JsonObject GetApp(string group, string name)
    {
        lock (_gate)
        {
            return _apps.TryGetValue(AppKey(group, name), out var app)
                ? app.Resource(includeSecrets: false)
                : throw new ArmException(404, "ResourceNotFound", $"The Resource 'Microsoft.App/containerApps/{name}' under resource group '{group}' was not found.");
        }
    }

    private (int, JsonObject?) PutApp(HttpContext context, string group, string name, JsonObject body)
    {
        lock (_gate)
        {
            if (!_groups.TryGetValue(group, out var resourceGroup) || (string?)resourceGroup["properties"]!["provisioningState"] == "Deleting")
            {
                throw new ArmException(404, "ResourceGroupNotFound", $"Resource group '{group}' could not be found.");
            }

            var existing = _apps.GetValueOrDefault(AppKey(group, name));
            if (existing?.Operation is not null)
            {
                throw new ArmException(409, "ContainerAppOperationInProgress", $"Cannot modify a container app '{name}' while an operation is in progress.");
            }

            var properties = body["properties"] as JsonObject ?? throw new ArmException(400, "InvalidRequestContent", "properties is required.");
            var secrets = Validate(name, body, properties);
            var template = properties["template"]!.DeepClone().AsObject();
            var app = existing ?? new App(group, name, $"/subscriptions/{SubscriptionId}/resourceGroups/{group}/providers/Microsoft.App/containerApps/{name}");
            app.Address = Runner.AddressFor(app.Id);
            var newRevision = existing is null || !JsonNode.DeepEquals(existing.Template, template);
            app.Location = (string)body["location"]!;
            app.Tags = body["tags"]?.DeepClone().AsObject() ?? [];
            app.Configuration = properties["configuration"]!.DeepClone().AsObject();
            app.Template = template;
            app.Secrets = secrets;
            app.ProvisioningState = "InProgress";
            _apps[AppKey(group, name)] = app;
            app.Operation = Begin(() =>
            {
                app.ProvisioningState = "Succeeded";
                app.Operation = null;
                if (newRevision)
                {
                    app.Revision++;
                    app.ReadyRevision = null;
                    if (app.RunningStatus != "Stopped")
                    {
                        app.Error = Runner.Run(app.Id, app.Template, app.Secrets);
                        app.RunningStatus = "Running";
                    }
                }
            });
            context.Response.Headers["Azure-AsyncOperation"] = OperationUri(app.Operation);
            context.Response.Headers.RetryAfter = "1";
            return (existing is null ? 201 : 200, app.Resource(includeSecrets: false));
        }
    }

    private (int, JsonObject?) DeleteApp(HttpContext context, string group, string name)
    {
        lock (_gate)
        {
            if (!_apps.TryGetValue(AppKey(group, name), out var app))
            {
                return (204, null);
            }

            if (app.Operation is not null)
            {
                throw new ArmException(409, "ContainerAppOperationInProgress", $"Cannot delete a container app '{name}' while an operation is in progress.");
            }

            app.ProvisioningState = "Deleting";
            app.Operation = Begin(() =>
            {
                Runner.Stop(app.Id, forget: true);
                _apps.Remove(AppKey(group, name));
            });
            context.Response.Headers["Azure-AsyncOperation"] = OperationUri(app.Operation);
            context.Response.Headers.Location = $"{BaseUrl}/subscriptions/{SubscriptionId}/operationresults/{app.Operation}?api-version=2024-03-01";
            return (202, null);
        }
    }

    private (int, JsonObject?) AppAction(HttpContext context, string group, string name, string action)
    {
        lock (_gate)
        {
            var app = _apps.GetValueOrDefault(AppKey(group, name))
                ?? throw new ArmException(404, "ResourceNotFound", $"The Resource 'Microsoft.App/containerApps/{name}' under resource group '{group}' was not found.");
            if (app.Operation is not null)
            {
                throw new ArmException(409, "ContainerAppOperationInProgress", $"Cannot {action} a container app '{name}' while an operation is in progress.");
            }

            app.RunningStatus = action == "stop" ? "Stopping" : "Starting";
            app.Operation = Begin(() =>
            {
                app.Operation = null;
                if (action == "stop")
                {
                    Runner.Stop(app.Id, forget: false);
                    app.RunningStatus = "Stopped";
                }
                else
                {
                    app.Error = Runner.Run(app.Id, app.Template, app.Secrets);
                    app.RunningStatus = "Running";
                }
            });
            context.Response.Headers["Azure-AsyncOperation"] = OperationUri(app.Operation);
            context.Response.Headers.Location = $"{BaseUrl}/subscriptions/{SubscriptionId}/operationresults/{app.Operation}?api-version=2024-03-01";
            return (202, null);
        }
    }

    private (int, JsonObject?) OperationStatus(HttpContext context, string id, bool asLocation)
    {
        lock (_gate)
        {
            var operation = _operations.GetValueOrDefault(id) ?? throw new ArmException(404, "OperationNotFound", $"Operation {id} was not found.");
            if (asLocation)
            {
                if (!operation.Done)
                {
                    context.Response.Headers.Location = context.Request.GetEncodedUrl();
                    context.Response.Headers.RetryAfter = "1";
                    return (202, null);
                }

                return (200, null);
            }

            return (200, new JsonObject
            {
                ["id"] = id,
                ["name"] = id,
                ["status"] = operation.Done ? "Succeeded" : "InProgress",
                ["startTime"] = operation.Started.ToString("O", CultureInfo.InvariantCulture),
            });
        }
    }

    /// <summary>Checks a Container App as ARM and the Container Apps service do; returns its secrets by name.</summary>
    private static Dictionary<string, string> Validate(string name, JsonObject body, JsonObject properties)
    {
        if (!AppName().IsMatch(name))
        {
            throw new ArmException(400, "ContainerAppInvalidName", $"Invalid ContainerApp name '{name}'. A name must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character and cannot have '--'. The length must not be more than 32 characters.");
        }

        if ((string?)body["location"] is not { Length: > 0 })
        {
            throw new ArmException(400, "LocationRequired", "The location property is required for this definition.");
        }

        if (!string.Equals((string?)properties["managedEnvironmentId"], EnvironmentId, StringComparison.OrdinalIgnoreCase))
        {
            throw new ArmException(404, "ManagedEnvironmentNotFound", $"The managed environment '{properties["managedEnvironmentId"]}' was not found.");
        }

        var secrets = (properties["configuration"]?["secrets"] as JsonArray ?? [])
            .ToDictionary(secret => (string)secret!["name"]!, secret => (string?)secret!["value"] ?? throw new ArmException(400, "ContainerAppSecretInvalid", $"Secret '{secret["name"]}' has no value."), StringComparer.Ordinal);
        var containers = properties["template"]?["containers"] as JsonArray;
        if (containers is not { Count: > 0 } || (string?)containers[0]!["image"] is not { Length: > 0 })
        {
            throw new ArmException(400, "ContainerAppImageRequired", "Container with name '' must have an image.");
        }

        foreach (var container in containers)
        {
            var cpu = (double?)container!["resources"]?["cpu"] ?? 0;
            var memory = (string?)container["resources"]?["memory"] ?? "";
            if (cpu is < 0.25 or > 4 || cpu * 4 != Math.Floor(cpu * 4) || memory != $"{(cpu * 2).ToString("0.##", CultureInfo.InvariantCulture)}Gi")
            {
                throw new ArmException(400, "ContainerAppInvalidResourceTotal",
                    $"The total requested CPU and memory resources for this application (CPU: {cpu}, memory: {memory}) is invalid. Total CPU and memory for all containers defined in a Container App must add up to one of the following CPU - Memory combinations: [cpu: 0.25, memory: 0.5Gi]; [cpu: 0.5, memory: 1.0Gi]; ...");
            }

            foreach (var variable in container["env"] as JsonArray ?? [])
            {
                if ((string?)variable!["secretRef"] is { } reference && !secrets.ContainsKey(reference))
                {
                    throw new ArmException(400, "ContainerAppSecretRefNotFound", $"SecretRef '{reference}' defined for container '{container["name"]}' not found.");
                }
            }
        }

        if (properties["configuration"]?["ingress"] is { } ingress && (string?)ingress["transport"] == "tcp" && ingress["exposedPort"] is null)
        {
            throw new ArmException(400, "ContainerAppInvalidIngressExposedPort", "The exposedPort is required for tcp transport.");
        }

        foreach (var volume in properties["template"]?["volumes"] as JsonArray ?? [])
        {
            if ((string?)volume!["storageType"] == "AzureFile" && (string?)volume["storageName"] != StorageName)
            {
                throw new ArmException(400, "ManagedEnvironmentStorageNotFound", $"Storage '{volume["storageName"]}' was not found in the managed environment.");
            }
        }

        return secrets;
    }

    private string Begin(Action complete)
    {
        var id = Guid.NewGuid().ToString("N");
        _operations[id] = new Operation(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow + OperationDelay, complete);
        return id;
    }

    private string OperationUri(string id) =>
        $"{BaseUrl}/subscriptions/{SubscriptionId}/providers/Microsoft.App/locations/westeurope/containerappOperationStatuses/{id}?api-version=2024-03-01";

    private async Task RunOperationsAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            lock (_gate)
            {
                foreach (var operation in _operations.Values.Where(operation => !operation.Done && operation.Due <= DateTimeOffset.UtcNow))
                {
                    operation.Complete();
                    operation.Done = true;
                }

                foreach (var app in _apps.Values.Where(app => app.RunningStatus == "Running" && app.ReadyRevision != app.RevisionName))
                {
                    var port = (int?)app.Configuration["ingress"]?["targetPort"] ?? 0;
                    if (Runner.IsReady(app.Id, port))
                    {
                        app.ReadyRevision = app.RevisionName;
                    }
                }
            }

            try
            {
                await Task.Delay(50, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    [GeneratedRegex("^[a-z](?!.*--)[a-z0-9-]{0,30}[a-z0-9]$")]
    private static partial Regex AppName();

    private sealed class Operation(DateTimeOffset started, DateTimeOffset due, Action complete)
    {
        public DateTimeOffset Started { get; } = started;
        public DateTimeOffset Due { get; } = due;
        public Action Complete { get; } = complete;
        public bool Done { get; set; }
    }

    private sealed class App(string group, string name, string id)
    {
        public string Group { get; } = group;
        public string Name { get; } = name;
        public string Id { get; } = id;
        public string Location { get; set; } = "";
        public JsonObject Tags { get; set; } = [];
        public JsonObject Configuration { get; set; } = [];
        public JsonObject Template { get; set; } = [];
        public Dictionary<string, string> Secrets { get; set; } = [];
        public string ProvisioningState { get; set; } = "InProgress";
        public string RunningStatus { get; set; } = "Running";
        public string? Operation { get; set; }
        public int Revision { get; set; }
        public string? ReadyRevision { get; set; }
        public string? Error { get; set; }

        public string? RevisionName => Revision == 0 ? null : $"{Name}--r{Revision}";

        public JsonObject Resource(bool includeSecrets)
        {
            var configuration = Configuration.DeepClone().AsObject();
            configuration["secrets"] = new JsonArray([.. Secrets.Select(secret => (JsonNode)(includeSecrets
                ? new JsonObject { ["name"] = secret.Key, ["value"] = secret.Value }
                : new JsonObject { ["name"] = secret.Key }))]);
            if (configuration["ingress"] is JsonObject ingress)
            {
                ingress["fqdn"] = Address;
            }

            return new JsonObject
            {
                ["id"] = Id,
                ["name"] = Name,
                ["type"] = "Microsoft.App/containerApps",
                ["location"] = Location,
                ["tags"] = Tags.DeepClone(),
                ["properties"] = new JsonObject
                {
                    ["provisioningState"] = ProvisioningState,
                    ["runningStatus"] = RunningStatus,
                    ["managedEnvironmentId"] = EnvironmentId,
                    ["latestRevisionName"] = RevisionName,
                    ["latestReadyRevisionName"] = ReadyRevision,
                    ["configuration"] = configuration,
                    ["template"] = Template.DeepClone(),
                },
            };
        }

        /// <summary>The ingress's address: in Azure a DNS name in the environment's domain, here the app's own loopback address.</summary>
        public string Address { get; set; } = "";
    }
}
