using Dapr.Client.Autogen.Grpc.v1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace FakeDapr;

/// <summary>
/// The part of daprd's gRPC API (<c>dapr.proto.runtime.v1.Dapr</c>) this product calls, with daprd's checks and
/// status codes. Dapr.Protos ships the messages but no server base class, so the methods are bound by hand;
/// ASP.NET Core gRPC calls the public virtual handlers of the same name.
/// </summary>
[BindServiceMethod(typeof(DaprRuntimeService), nameof(BindService))]
public class DaprRuntimeService(FakeDaprSidecar sidecar)
{
    private const string ServiceName = "dapr.proto.runtime.v1.Dapr";

    private static readonly Method<PublishEventRequest, Empty> s_publishEvent = new(
        MethodType.Unary, ServiceName, "PublishEvent", Marshal(PublishEventRequest.Parser), Marshal(Empty.Parser));

    private static readonly Method<GetSecretRequest, GetSecretResponse> s_getSecret = new(
        MethodType.Unary, ServiceName, "GetSecret", Marshal(GetSecretRequest.Parser), Marshal(GetSecretResponse.Parser));

    public static void BindService(ServiceBinderBase binder, DaprRuntimeService? service)
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddMethod(s_publishEvent, service is null ? null : service.PublishEvent);
        binder.AddMethod(s_getSecret, service is null ? null : service.GetSecret);
    }

    public virtual Task<Empty> PublishEvent(PublishEventRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        sidecar.CheckApiToken(context);
        sidecar.Publish(request.PubsubName, request.Topic, request.Data.ToByteArray(), request.DataContentType, request.Metadata);
        return Task.FromResult(new Empty());
    }

    public virtual Task<GetSecretResponse> GetSecret(GetSecretRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        sidecar.CheckApiToken(context);
        var response = new GetSecretResponse();
        foreach (var (key, value) in sidecar.GetSecret(request.StoreName, request.Key))
        {
            response.Data.Add(key, value);
        }

        return Task.FromResult(response);
    }

    private static Marshaller<T> Marshal<T>(MessageParser<T> parser)
        where T : IMessage<T> =>
        Marshallers.Create(message => message.ToByteArray(), parser.ParseFrom);
}
