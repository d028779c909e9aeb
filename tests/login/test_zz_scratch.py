import pytest
from tests.broker.helpers import jwt_parts
from tests.conftest import new_client
from tests.login.flow import request_for, login_tokens

pytestmark = pytest.mark.interop

async def test_scratch(login):
    client = await new_client(login.broker, login.tenant, redirect_uris=["https://app.example/cb"])
    req = request_for(client)
    async with login.browser() as b:
        body = await login_tokens(login, client, req, b)
        print(body)
        print(jwt_parts(body["id_token"]))
        print(jwt_parts(body["access_token"]))
        info = await b.get(f"/t/{login.tenant}/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
        print(info.json())
        print((await b.get(f"/t/{login.tenant}/jwks")).json())
