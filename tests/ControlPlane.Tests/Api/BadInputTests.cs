using System.Net;
using System.Net.Http.Headers;
using System.Text;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Api;

/// <summary>Every malformed, unknown or unauthorised request gets the right 4xx with problem+json, never a 5xx.</summary>
public sealed class BadInputTests(BadInputTests.Host host) : IClassFixture<BadInputTests.Host>
{
    public sealed class Host : IAsyncLifetime
    {
        public ControlPlaneFactory Factory { get; } = new();

        public ControlPlaneApi Admin { get; private set; } = null!;

        public string TenantId { get; private set; } = "";

        public async Task InitializeAsync()
        {
            Admin = Factory.CreateAdminApi();
            TenantId = (string)(await Admin.CreateTenantAsync("Bad Input Inc", "team"))["id"]!;
        }

        public async Task DisposeAsync() => await Factory.DisposeAsync();
    }

    private ControlPlaneApi Admin => host.Admin;

    private string Instances => $"/api/v1/tenants/{host.TenantId}/instances";

    [Fact]
    public async Task Request_without_api_key_is_401_with_bearer_challenge()
    {
        using var response = await host.Factory.CreateAnonymousApi().Http.GetAsync("/api/v1/tenants");

        var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.Unauthorized, "unauthenticated");
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Contains("Bearer", (string?)problem["detail"], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Bearer cpk_not-a-real-key")]
    [InlineData("Bearer ")]
    [InlineData("Basic dXNlcjpwYXNz")]
    [InlineData("cpk_missing-scheme")]
    public async Task Invalid_credentials_are_401(string authorization)
    {
        using var client = host.Factory.CreateClient();
        client.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", authorization);

        using var response = await client.GetAsync($"/api/v1/tenants/{host.TenantId}");

        await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.Unauthorized, "unauthenticated");
    }

    [Theory]
    [InlineData("/api/v1/tenants/tnt-0000000000000000")]
    [InlineData("/api/v1/tenants/not-an-id")]
    [InlineData("/api/v1/tenants/tnt-0000000000000000/instances")]
    public async Task Unknown_tenant_is_404(string path)
    {
        using var response = await Admin.Http.GetAsync(path);

        await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.NotFound, "not-found");
    }

    [Theory]
    [InlineData("ins-0000000000000000")]
    [InlineData("something-else")]
    [InlineData("ins-0000000000000000:stop")]
    public async Task Unknown_instance_is_404(string instanceId)
    {
        using var response = await Admin.Http.GetAsync($"{Instances}/{instanceId}");

        await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.NotFound, "not-found");
    }

    [Fact]
    public async Task Unknown_operation_is_404_to_read_and_to_cancel()
    {
        using var read = await Admin.Http.GetAsync($"/api/v1/tenants/{host.TenantId}/operations/op-0000000000000000");
        using var cancel = await Admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{host.TenantId}/operations/op-0000000000000000:cancel");

        await ControlPlaneApi.ExpectProblemAsync(read, HttpStatusCode.NotFound, "not-found");
        await ControlPlaneApi.ExpectProblemAsync(cancel, HttpStatusCode.NotFound, "not-found");
    }

    [Theory]
    [InlineData("""{"name":"cache","product":"memcached","size":"small"}""", "product")]
    [InlineData("""{"name":"cache","size":"small"}""", "product")]
    [InlineData("""{"name":"cache","product":"garnet","size":"huge"}""", "size")]
    [InlineData("""{"name":"cache","product":"garnet","version":"0.0.1"}""", "version")]
    [InlineData("""{"name":"","product":"garnet"}""", "name")]
    [InlineData("""{"product":"garnet"}""", "name")]
    [InlineData("""{"name":"Orders Cache","product":"garnet"}""", "name")]
    [InlineData("""{"name":"-cache","product":"garnet"}""", "name")]
    [InlineData("""{"name":"cache","product":"garnet","sise":"small"}""", "sise")]
    [InlineData("""{"name":42,"product":"garnet"}""", "name")]
    public async Task Invalid_create_instance_request_names_the_field(string body, string field)
    {
        using var response = await PostJsonAsync(Instances, body);

        var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.NotNull(problem["errors"]?[field]);
    }

    [Fact]
    public async Task Five_hundred_character_name_is_refused()
    {
        using var response = await PostJsonAsync(Instances, $$"""{"name":"{{new string('a', 500)}}","product":"garnet"}""");

        var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "validation-failed");
        Assert.Contains("63", (string?)problem["errors"]!["name"]![0], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"name":"","plan":"team"}""", "name")]
    [InlineData("""{"name":"Acme","plan":"platinum"}""", "plan")]
    [InlineData("""{"plan":"team"}""", "name")]
    public async Task Invalid_create_tenant_request_names_the_field(string body, string field)
    {
        using var response = await PostJsonAsync("/api/v1/tenants", body);

        var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "validation-failed");
        Assert.NotNull(problem["errors"]?[field]);
    }

    [Fact]
    public async Task Tenant_name_of_500_characters_is_refused()
    {
        using var response = await PostJsonAsync("/api/v1/tenants", $$"""{"name":"{{new string('x', 500)}}"}""");

        await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "validation-failed");
    }

    [Theory]
    [InlineData("{\"name\":")]
    [InlineData("not json at all")]
    [InlineData("[1,2,3]")]
    public async Task Malformed_json_is_400(string body)
    {
        using var response = await PostJsonAsync(Instances, body);

        await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "malformed-request");
    }

    [Fact]
    public async Task Missing_body_is_400()
    {
        using var response = await Admin.Http.PostAsync(Instances, content: null);

        var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "malformed-request");
        Assert.Contains("body", (string?)problem["detail"], StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/xml")]
    [InlineData("application/x-www-form-urlencoded")]
    public async Task Wrong_content_type_is_415(string contentType)
    {
        using var content = new StringContent("""{"name":"cache","product":"garnet"}""", Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue(contentType);

        using var response = await Admin.Http.PostAsync(Instances, content);

        await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
    }

    [Fact]
    public async Task Patch_of_an_unknown_instance_is_404()
    {
        using var unknown = await PatchJsonAsync($"{Instances}/ins-0000000000000000", "{}");

        await ControlPlaneApi.ExpectProblemAsync(unknown, HttpStatusCode.NotFound, "not-found");
    }

    [Fact]
    public async Task Oversized_idempotency_key_is_400()
    {
        using var response = await Admin.SendAsync(
            HttpMethod.Post,
            Instances,
            new { name = "cache", product = "garnet", size = "nope" },
            idempotencyKey: new string('k', 300));

        var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.NotNull(problem["errors"]);
    }

    [Fact]
    public async Task Wrong_method_and_unknown_route_are_problem_json()
    {
        using var method = await Admin.Http.PutAsync("/api/v1/catalog", content: null);
        using var route = await Admin.Http.GetAsync("/api/v1/nothing-here");

        await ControlPlaneApi.ExpectProblemAsync(method, HttpStatusCode.MethodNotAllowed, "method-not-allowed");
        await ControlPlaneApi.ExpectProblemAsync(route, HttpStatusCode.NotFound, "not-found");
    }

    [Fact]
    public async Task Garbage_on_every_endpoint_never_yields_a_server_error()
    {
        string[] bodies = ["", "{", "null", "\"text\"", "{\"size\":[]}", "{\"name\":null,\"product\":null}", new string('[', 2000)];
        string[] paths =
        [
            "/api/v1/tenants",
            Instances,
            $"{Instances}/ins-0000000000000000",
            $"{Instances}/ins-0000000000000000:stop",
            $"{Instances}/ins-0000000000000000:start",
            $"{Instances}/ins-0000000000000000/credentials",
            $"/api/v1/tenants/{host.TenantId}/operations/op-0000000000000000:cancel",
        ];

        foreach (var path in paths)
        {
            foreach (var method in new[] { HttpMethod.Post, HttpMethod.Patch, HttpMethod.Delete, HttpMethod.Get })
            {
                foreach (var body in bodies)
                {
                    using var request = new HttpRequestMessage(method, path)
                    {
                        Content = new StringContent(body, Encoding.UTF8, "application/json"),
                    };
                    using var response = await Admin.Http.SendAsync(request);

                    Assert.True((int)response.StatusCode < 500, $"{method} {path} with '{body[..Math.Min(body.Length, 20)]}' gave {(int)response.StatusCode}");
                    if (!response.IsSuccessStatusCode)
                    {
                        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                    }
                }
            }
        }
    }

    [Fact]
    public async Task OpenApi_document_describes_the_v1_api()
    {
        var document = await host.Factory.CreateAnonymousApi().GetAsync("/openapi/v1.json");

        var paths = document["paths"]!.AsObject().Select(path => path.Key).ToList();
        Assert.Contains("/api/v1/tenants/{tenantId}/instances", paths);
        Assert.Contains("/api/v1/tenants/{tenantId}/instances/{instanceId}:stop", paths);
        Assert.Contains("/api/v1/tenants/{tenantId}/operations/{operationId}:cancel", paths);
        Assert.Contains("/api/v1/catalog", paths);
        Assert.NotNull(document["components"]?["securitySchemes"]?["bearer"]);
    }

    [Fact]
    public async Task Health_endpoints_answer_without_a_key()
    {
        var anonymous = host.Factory.CreateAnonymousApi().Http;

        using var live = await anonymous.GetAsync("/healthz");
        using var ready = await anonymous.GetAsync("/readyz");

        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Fact]
    public async Task Catalog_lists_garnet_with_versions_and_sizes()
    {
        var catalog = await Admin.GetAsync("/api/v1/catalog");

        var garnet = catalog["products"]!.AsArray().Single(product => (string?)product!["name"] == "garnet")!;
        Assert.Equal("2.2.8", (string?)garnet["defaultVersion"]);
        Assert.Equal(["small", "medium", "large"], garnet["sizes"]!.AsArray().Select(size => (string)size!["name"]!).ToArray());
        Assert.All(garnet["sizes"]!.AsArray(), size => Assert.True((int)size!["memoryMb"]! > 0));
    }

    [Fact]
    public void Admin_key_file_is_private_to_its_owner()
    {
        var mode = File.GetUnixFileMode(Path.Combine(host.Factory.DataDirectory.Path, "admin-api-key"));

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, mode);
    }

    private Task<HttpResponseMessage> PostJsonAsync(string path, string json) =>
        Admin.Http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));

    private Task<HttpResponseMessage> PatchJsonAsync(string path, string json) =>
        Admin.Http.PatchAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
}
