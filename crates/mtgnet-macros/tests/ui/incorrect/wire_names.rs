struct Condition;

#[mtgnet_macros::service(name = "Math")]
pub trait Math {
    async fn version(&self) -> Result<String, Condition>;
    async fn add_one(&self, a: i64) -> Result<i64, Condition>;
    #[method(name = "ADDONE")]
    async fn increment(&self, a: i64) -> Result<i64, Condition>;
    async fn notify(&self) -> Result<(), Condition>;
}

fn main() {}
