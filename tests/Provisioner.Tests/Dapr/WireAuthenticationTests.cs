using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Provisioner.Deployments;
using Provisioner.Messaging;
using Provisioner.Messaging.Wire;

namespace Provisioner.Tests.Dapr;

/// <summary>
/// Every provisioning message carries an authenticator over all of it, bound to its direction, instance and generation:
/// what a receiver reads is exactly what a holder of the key sent, about that instance, and not from the future.
/// </summary>
public sealed class WireAuthenticationTests
{
    private static readonly DateTimeOffset s_now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);
    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);

    [Fact]
    public void A_signed_command_is_read_back_as_sent_even_when_a_broker_reorders_and_reindents_it()
    {
        var wire = Wire(_key);
        var sent = Apply("ins-a", generation: 3);

        var reformatted = Reorder(JsonNode.Parse(wire.WriteCommand(sent).GetRawText())!.AsObject());
        var read = (ApplyDeploymentCommand)wire.ReadCommand(JsonDocument.Parse(reformatted.ToJsonString(new JsonSerializerOptions { WriteIndented = true })).RootElement);

        Assert.Equal(sent.Spec with { Password = read.Spec.Password }, read.Spec);
        Assert.Equal("pw-a", read.Spec.Password.Value);
        Assert.Equal(sent.OperationId, read.OperationId);
    }

    [Fact]
    public void A_command_for_instance_A_delivered_as_instance_B_is_refused()
    {
        var wire = Wire(_key);
        var forA = Json(wire.WriteCommand(Apply("ins-a", generation: 1)));

        forA["instanceId"] = "ins-b";
        forA["spec"]!["instanceId"] = "ins-b";

        var refused = Assert.Throws<WireFormatException>(() => wire.ReadCommand(Element(forA)));
        Assert.Equal(WireRefusal.Authenticator, refused.Reason);
        Assert.Contains("does not match its authenticator", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_password_ciphertext_moved_into_another_instances_command_is_refused()
    {
        var wire = Wire(_key);
        var forA = Json(wire.WriteCommand(Apply("ins-a", generation: 1)));
        var forB = Json(wire.WriteCommand(Apply("ins-b", generation: 1)));

        forB["spec"]!["password"] = forA["spec"]!["password"]!.DeepClone();

        Assert.Equal(WireRefusal.Authenticator, Assert.Throws<WireFormatException>(() => wire.ReadCommand(Element(forB))).Reason);
    }

    [Theory]
    [InlineData("spec.size", "large")]
    [InlineData("spec.goal", "absent")]
    [InlineData("spec.generation", 99)]
    [InlineData("spec.tenantId", "tenant-x")]
    [InlineData("operationId", "op-x")]
    [InlineData("purpose", "rollback")]
    [InlineData("issuedAt", "2030-01-01T00:00:00+00:00")]
    public void A_command_with_any_field_changed_is_refused(string path, object value)
    {
        var wire = Wire(_key);
        var message = Json(wire.WriteCommand(Apply("ins-a", generation: 1)));
        var parent = path.StartsWith("spec.", StringComparison.Ordinal) ? message["spec"]!.AsObject() : message;

        parent[path.Split('.')[^1]] = JsonValue.Create(value);

        Assert.Equal(WireRefusal.Authenticator, Assert.Throws<WireFormatException>(() => wire.ReadCommand(Element(message))).Reason);
    }

    [Fact]
    public void A_command_without_an_authenticator_or_signed_with_another_key_is_refused_saying_which()
    {
        var wire = Wire(_key);
        var unsigned = JsonSerializer.SerializeToElement(Apply("ins-a", generation: 1), wire.Options);
        var otherKey = Wire(RandomNumberGenerator.GetBytes(32)).WriteCommand(Apply("ins-a", generation: 1));

        var missing = Assert.Throws<WireFormatException>(() => wire.ReadCommand(unsigned));
        var foreign = Assert.Throws<WireFormatException>(() => wire.ReadCommand(otherKey));

        Assert.Equal(WireRefusal.Authenticator, missing.Reason);
        Assert.Contains("has no authenticator", missing.Message, StringComparison.Ordinal);
        Assert.Equal(WireRefusal.Authenticator, foreign.Reason);
        Assert.Contains($"this side holds key {wire.Secrets.KeyId}", foreign.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_member_named_twice_is_refused_so_the_signature_and_the_reader_cannot_see_different_values()
    {
        var wire = Wire(_key);
        var signed = wire.WriteCommand(Apply("ins-a", generation: 1)).GetRawText();
        var doubled = signed.Insert(1, "\"operationId\":\"op-x\",");

        Assert.Equal(WireRefusal.Authenticator, Assert.Throws<WireFormatException>(() => wire.ReadCommand(JsonDocument.Parse(doubled).RootElement)).Reason);
    }

    [Fact]
    public void An_event_cannot_be_delivered_as_a_command_nor_for_another_instance()
    {
        var wire = Wire(_key);
        var applied = Json(wire.WriteEvent(Applied("ins-a", s_now)));
        var asCommand = Json(wire.WriteEvent(Applied("ins-a", s_now)));

        applied["instanceId"] = "ins-b";

        Assert.Equal(WireRefusal.Authenticator, Assert.Throws<WireFormatException>(() => wire.ReadEvent(Element(applied))).Reason);
        Assert.Equal(WireRefusal.Authenticator, Assert.Throws<WireFormatException>(() => wire.ReadCommand(Element(asCommand))).Reason);
    }

    [Fact]
    public void An_event_stamped_further_ahead_than_the_allowed_skew_is_refused_and_a_late_one_is_read()
    {
        var clock = new FakeTimeProvider(s_now);
        var wire = Wire(_key, clock, TimeSpan.FromMinutes(5));

        var slightlyAhead = wire.ReadEvent(wire.WriteEvent(Applied("ins-a", s_now.AddMinutes(4))));
        var late = wire.ReadEvent(wire.WriteEvent(Applied("ins-a", s_now.AddHours(-6))));
        var future = Assert.Throws<WireFormatException>(() => wire.ReadEvent(wire.WriteEvent(Applied("ins-a", s_now.AddDays(365)))));

        Assert.Equal(s_now.AddMinutes(4), slightlyAhead.OccurredAt);
        Assert.Equal(s_now.AddHours(-6), late.OccurredAt);
        Assert.Equal(WireRefusal.Clock, future.Reason);
        Assert.Contains("ahead of this side's clock", future.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void While_the_key_rotates_a_receiver_accepts_the_old_key_it_was_given_and_refuses_it_once_removed()
    {
        var newKey = RandomNumberGenerator.GetBytes(32);
        var oldSender = Wire(_key);
        var rotating = new WireSecretProtector();
        rotating.UseKeys(newKey, [_key]);
        var receiver = new ProvisioningWireFormat(rotating);
        var sentWithOldKey = oldSender.WriteCommand(Apply("ins-a", generation: 1));

        var read = (ApplyDeploymentCommand)receiver.ReadCommand(sentWithOldKey);
        rotating.UseKeys(newKey, []);
        var refused = Assert.Throws<WireFormatException>(() => receiver.ReadCommand(sentWithOldKey));

        Assert.Equal("pw-a", read.Spec.Password.Value);
        Assert.Equal(WireRefusal.Authenticator, refused.Reason);
        // What the rotating side sends, the old side cannot read until it has the new key: the order of a rotation matters.
        Assert.Throws<WireFormatException>(() => oldSender.ReadCommand(receiver.WriteCommand(Apply("ins-a", generation: 2))));
    }

    private static ProvisioningWireFormat Wire(byte[] key, TimeProvider? clock = null, TimeSpan? skew = null)
    {
        var secrets = new WireSecretProtector();
        secrets.UseKey(key);
        return new ProvisioningWireFormat(secrets, clock, skew);
    }

    private static ApplyDeploymentCommand Apply(string instanceId, long generation) => new()
    {
        InstanceId = instanceId,
        OperationId = "op-1",
        IssuedAt = s_now,
        Purpose = ApplyPurpose.Operation,
        Spec = DaprProvisionerHarness.SmallGarnet(instanceId, "pw-" + instanceId[^1], generation: generation),
    };

    private static DeploymentApplied Applied(string instanceId, DateTimeOffset at) => new()
    {
        InstanceId = instanceId,
        Generation = 1,
        Purpose = ApplyPurpose.Reconcile,
        OccurredAt = at,
        Observed = new ObservedDeployment { Status = DeploymentStatus.Running, Endpoint = new Endpoint { Host = "127.0.0.1", Port = 7000 } },
    };

    private static JsonObject Json(JsonElement element) => JsonNode.Parse(element.GetRawText())!.AsObject();

    private static JsonElement Element(JsonNode node) => JsonDocument.Parse(node.ToJsonString()).RootElement;

    /// <summary>The same members in reverse order, all the way down, as a broker that re-serializes JSON might send them.</summary>
    private static JsonObject Reorder(JsonObject json) =>
        new(json.Reverse().Select(member => KeyValuePair.Create(member.Key, member.Value is JsonObject inner ? Reorder(inner) : member.Value?.DeepClone())));
}
