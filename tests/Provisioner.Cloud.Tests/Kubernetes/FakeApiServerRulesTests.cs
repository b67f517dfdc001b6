using System.Net;
using FakeKubernetes;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Provisioner.Cloud.Tests.Kubernetes;

/// <summary>The fake refuses what the real API server refuses, so the backend is not passing against a kinder one.</summary>
public sealed class FakeApiServerRulesTests : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("k8s-rules-").FullName;
    private FakeKubernetesServer _server = null!;
    private k8s.Kubernetes _client = null!;

    public async Task InitializeAsync()
    {
        _server = await FakeKubernetesServer.StartAsync(_root);
        _client = new k8s.Kubernetes(new KubernetesClientConfiguration { Host = _server.BaseUrl });
        await _client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = "rules" } });
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task Reads_of_missing_objects_are_404_and_a_second_create_is_409_already_exists()
    {
        var missing = await Refused(() => _client.CoreV1.ReadNamespacedSecretAsync("nope", "rules"));
        Assert.Equal(HttpStatusCode.NotFound, missing.Code);

        await _client.CoreV1.CreateNamespacedConfigMapAsync(Map("once"), "rules");
        var twice = await Refused(() => _client.CoreV1.CreateNamespacedConfigMapAsync(Map("once"), "rules"));
        Assert.Equal(HttpStatusCode.Conflict, twice.Code);
        Assert.Equal("AlreadyExists", twice.Reason);

        var nowhere = await Refused(() => _client.CoreV1.CreateNamespacedConfigMapAsync(Map("lost"), "no-such-namespace"));
        Assert.Equal(HttpStatusCode.NotFound, nowhere.Code);
    }

    [Fact]
    public async Task Invalid_objects_are_422_and_a_stale_resource_version_is_409_conflict()
    {
        var badName = await Refused(() => _client.CoreV1.CreateNamespacedConfigMapAsync(Map("Not_A_Name"), "rules"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, badName.Code);

        var created = await _client.CoreV1.CreateNamespacedConfigMapAsync(Map("versioned"), "rules");
        var stale = created.Metadata.ResourceVersion;
        created.Data = new Dictionary<string, string> { ["a"] = "2" };
        await _client.CoreV1.ReplaceNamespacedConfigMapAsync(created, "versioned", "rules");
        created.Metadata.ResourceVersion = stale;
        var conflict = await Refused(() => _client.CoreV1.ReplaceNamespacedConfigMapAsync(created, "versioned", "rules"));
        Assert.Equal(HttpStatusCode.Conflict, conflict.Code);
        Assert.Equal("Conflict", conflict.Reason);

        created.Metadata.ResourceVersion = null;
        var unversioned = await Refused(() => _client.CoreV1.ReplaceNamespacedConfigMapAsync(created, "versioned", "rules"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, unversioned.Code);
    }

    [Fact]
    public async Task Server_side_apply_needs_a_field_manager_and_refuses_another_managers_field_unless_forced()
    {
        var patch = new V1Patch(Map("applied", "1"), V1Patch.PatchType.ApplyPatch);
        var anonymous = await Refused(() => _client.CoreV1.PatchNamespacedConfigMapAsync(patch, "applied", "rules"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, anonymous.Code);

        await _client.CoreV1.PatchNamespacedConfigMapAsync(patch, "applied", "rules", fieldManager: "first");
        var other = new V1Patch(Map("applied", "2"), V1Patch.PatchType.ApplyPatch);
        var conflict = await Refused(() => _client.CoreV1.PatchNamespacedConfigMapAsync(other, "applied", "rules", fieldManager: "second"));
        Assert.Equal(HttpStatusCode.Conflict, conflict.Code);
        Assert.Contains("conflict with \"first\"", conflict.Message, StringComparison.Ordinal);

        var forced = await _client.CoreV1.PatchNamespacedConfigMapAsync(other, "applied", "rules", fieldManager: "second", force: true);
        Assert.Equal("2", forced.Data["a"]);

        var merge = new V1Patch("{\"data\":{\"a\":\"3\"}}", V1Patch.PatchType.MergePatch);
        var unsupported = await Refused(() => _client.CoreV1.PatchNamespacedConfigMapAsync(merge, "applied", "rules"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, unsupported.Code);
    }

    [Fact]
    public async Task Writes_to_a_resource_leave_its_status_alone_and_immutable_fields_stay_immutable()
    {
        var claim = new V1PersistentVolumeClaim
        {
            ApiVersion = "v1",
            Kind = "PersistentVolumeClaim",
            Metadata = new V1ObjectMeta { Name = "data", NamespaceProperty = "rules" },
            Spec = new V1PersistentVolumeClaimSpec
            {
                AccessModes = ["ReadWriteOnce"],
                Resources = new V1VolumeResourceRequirements { Requests = new Dictionary<string, ResourceQuantity> { ["storage"] = new("2Gi") } },
            },
            Status = new V1PersistentVolumeClaimStatus { Phase = "Lost" },
        };
        var applied = await _client.CoreV1.PatchNamespacedPersistentVolumeClaimAsync(new V1Patch(claim, V1Patch.PatchType.ApplyPatch), "data", "rules", fieldManager: "test");
        Assert.Equal("Bound", applied.Status.Phase);

        claim.Spec.Resources.Requests["storage"] = new ResourceQuantity("1Gi");
        var shrink = await Refused(() => _client.CoreV1.PatchNamespacedPersistentVolumeClaimAsync(new V1Patch(claim, V1Patch.PatchType.ApplyPatch), "data", "rules", fieldManager: "test"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, shrink.Code);

        claim.Spec.Resources.Requests["storage"] = new ResourceQuantity("2Gi");
        claim.Spec.AccessModes = ["ReadWriteMany"];
        var mode = await Refused(() => _client.CoreV1.PatchNamespacedPersistentVolumeClaimAsync(new V1Patch(claim, V1Patch.PatchType.ApplyPatch), "data", "rules", fieldManager: "test"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, mode.Code);
    }

    [Fact]
    public async Task A_client_that_sends_more_than_its_share_is_answered_429_with_retry_after_by_default()
    {
        using var http = new HttpClient { BaseAddress = new Uri(_server.BaseUrl) };
        HttpResponseMessage? throttled = null;
        for (var sent = 0; sent < 1000 && throttled is null; sent++)
        {
            var response = await http.GetAsync("/api/v1/namespaces/rules/configmaps");
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                throttled = response;
            }
        }

        Assert.NotNull(throttled);
        Assert.True(throttled.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        Assert.Contains("\"reason\":\"TooManyRequests\"", await throttled.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private static V1ConfigMap Map(string name, string value = "1") => new()
    {
        ApiVersion = "v1",
        Kind = "ConfigMap",
        Metadata = new V1ObjectMeta { Name = name },
        Data = new Dictionary<string, string> { ["a"] = value },
    };

    private static async Task<(HttpStatusCode Code, string Reason, string Message)> Refused(Func<Task> call)
    {
        var exception = await Assert.ThrowsAsync<HttpOperationException>(call);
        var status = KubernetesJson.Deserialize<V1Status>(exception.Response.Content);
        return (exception.Response.StatusCode, status.Reason, status.Message);
    }
}
